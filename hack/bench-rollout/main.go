// Command bench-rollout measures atomic rollouts of a watched directory
// (rollout.atomicManifests) from outside berthd, with 20 objects per
// revision (10 Containers and their Tasks, on an Image declared apart):
//
//   - change → Ready: a new revision (every Container's env changed, so all
//     10 are recreated) renamed into the directory, until berth rollout
//     history shows it Ready (which includes the 1 s every object must stay
//     Ready together);
//   - rollback: a revision whose one Container's command exits, until the
//     revision is Failed (detection) and until all 20 objects of the
//     previous revision are Ready again.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"berth.dev/berth/internal/benchkit"
)

const pairs = 10 // Containers, each with its Task: 20 objects

func main() {
	bin := flag.String("bin", "bin", "directory of berthd and berth")
	runs := flag.Int("runs", 5, "revisions rolled out (and as many rolled back, at most 3)")
	flag.Parse()
	if err := run(*bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench-rollout:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin, sock, dir, staging, set string
}

func run(bin string, runs int) error {
	bin, _ = filepath.Abs(bin)
	work, err := os.MkdirTemp("/tmp", "berth-br-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{bin: bin, dir: filepath.Join(work, "manifests"), staging: filepath.Join(work, "staging")}
	b.set = b.dir
	for _, d := range []string{b.dir, b.staging} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	archive := filepath.Join(work, "busybox.tar")
	if out, err := exec.Command("go", "run", "./hack/mkimage", "-name", "bench.local/busybox:latest", "-o", archive).CombinedOutput(); err != nil {
		return fmt.Errorf("mkimage: %v %s", err, out)
	}
	cfg := filepath.Join(work, "config.yaml")
	if err := os.WriteFile(cfg, []byte("rollout: {atomicManifests: true, timeout: 60s, minReady: 1s}\n"), 0o644); err != nil {
		return err
	}
	d, err := benchkit.StartBerthdAt(bin, work, filepath.Join(work, "state"), "--manifests", b.dir, "--config", cfg)
	if err != nil {
		return err
	}
	b.sock = d.Socket
	defer func() {
		// Leave nothing running: an empty set as the last revision.
		_ = b.place("")
		b.waitFor(2*time.Minute, func() bool { return b.count("task", "ls") == 0 })
		d.Stop()
	}()
	img := fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec: {ref: "bench.local/busybox:latest", pullPolicy: Never, source: {archive: %q}}
`, archive)
	f := filepath.Join(work, "image.yaml")
	if err := os.WriteFile(f, []byte(img), 0o644); err != nil {
		return err
	}
	if _, err := d.CLI("apply", "-f", f, "--wait", "--timeout", "60s"); err != nil {
		return err
	}

	fmt.Printf("\natomic rollout of a watched directory, %d objects per revision (%d Containers + Tasks, all recreated)\n\n", 2*pairs, pairs)
	var ready []time.Duration
	rev := 0
	for i := 0; i < runs+1; i++ {
		rev++
		took, err := b.rollout(rev, fmt.Sprintf("v%d", i), "")
		if err != nil {
			return err
		}
		if i > 0 { // the first creates the containers: not a change
			ready = append(ready, took)
		}
	}
	fmt.Printf("%-34s %5s %9s %9s\n", "", "runs", "p50 ms", "max ms")
	fmt.Printf("%-34s %5d %9.0f %9.0f\n", "changed file → revision Ready", len(ready), ms(benchkit.Median(ready)), ms(maxOf(ready)))

	var detect, back, total []time.Duration
	for i := 0; i < min(runs, 3); i++ {
		rev++
		dt, bt, err := b.rollback(rev, fmt.Sprintf("bad%d", i))
		if err != nil {
			return err
		}
		detect, back, total = append(detect, dt), append(back, bt), append(total, dt+bt)
	}
	fmt.Printf("%-34s %5d %9.0f %9.0f\n", "failing file → failure detected", len(detect), ms(benchkit.Median(detect)), ms(maxOf(detect)))
	fmt.Printf("%-34s %5d %9.0f %9.0f\n", "failure → previous revision Ready", len(back), ms(benchkit.Median(back)), ms(maxOf(back)))
	fmt.Printf("%-34s %5d %9.0f %9.0f\n", "failing file → previous Ready", len(total), ms(benchkit.Median(total)), ms(maxOf(total)))
	fmt.Println("\nthe failing revision: one of the 10 Containers' command exits (the other 9 are recreated too,")
	fmt.Println("and recreated back by the rollback); Ready includes the 1 s (minReady) held by every object")
	return nil
}

// set is the directory's one manifest: pairs Containers and Tasks; bad
// names the greeting whose first Container's command exits.
func set(greeting string, bad bool) string {
	var sb strings.Builder
	for i := 0; i < pairs; i++ {
		cmd := "exec sleep 100000" // under berth's init: a stop is immediate
		if bad && i == 0 {
			cmd = "exit 3"
		}
		fmt.Fprintf(&sb, `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: br%[1]d}
spec:
  image: busybox
  command: [sh, -c, %[2]q]
  env: [{name: GREETING, value: %[3]s}]
  init: true
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: br%[1]d}
spec: {container: br%[1]d, stopTimeout: 1s}
`, i, cmd, greeting)
	}
	return sb.String()
}

func (b *bench) place(body string) error {
	tmp := filepath.Join(b.staging, "set.yaml")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.dir, "set.yaml"))
}

type revision struct {
	Number int64  `json:"number"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

func (b *bench) revision(n int) revision {
	out, err := exec.Command(filepath.Join(b.bin, "berth"), "--address", b.sock, "rollout", "history", "--applyset", b.set, "-o", "json").Output()
	if err != nil {
		return revision{}
	}
	var revs []revision
	_ = json.Unmarshal(out, &revs)
	for _, r := range revs {
		if r.Number == int64(n) {
			return r
		}
	}
	return revision{}
}

func (b *bench) rollout(n int, greeting, _ string) (time.Duration, error) {
	start := time.Now()
	if err := b.place(set(greeting, false)); err != nil {
		return 0, err
	}
	var r revision
	if !b.waitFor(2*time.Minute, func() bool { r = b.revision(n); return r.State == "Ready" || r.State == "Failed" }) {
		return 0, fmt.Errorf("revision %d not finished after 2 minutes: %+v", n, r)
	}
	if r.State != "Ready" {
		return 0, fmt.Errorf("revision %d failed: %s", n, r.Reason)
	}
	return time.Since(start), nil
}

func (b *bench) rollback(n int, greeting string) (detect, back time.Duration, err error) {
	start := time.Now()
	if err := b.place(set(greeting, true)); err != nil {
		return 0, 0, err
	}
	var r revision
	if !b.waitFor(2*time.Minute, func() bool { r = b.revision(n); return r.State == "Failed" || r.State == "Ready" }) {
		return 0, 0, fmt.Errorf("revision %d not finished after 2 minutes: %+v", n, r)
	}
	if r.State != "Failed" {
		return 0, 0, fmt.Errorf("the failing revision %d became Ready", n)
	}
	detect = time.Since(start)
	failed := time.Now()
	if !b.waitFor(2*time.Minute, b.allReady) {
		return 0, 0, fmt.Errorf("previous revision not Ready again after 2 minutes")
	}
	return detect, time.Since(failed), nil
}

type object struct {
	Generation int64 `json:"generation"`
	Status     struct {
		ObservedGeneration int64 `json:"observedGeneration"`
		Conditions         []struct {
			Type, Status string
		} `json:"conditions"`
		// State is a Task's (the kind parts of a status are flat).
		State string `json:"state"`
	} `json:"status"`
}

// allReady: every Container and Task Ready for its generation.
func (b *bench) allReady() bool {
	for _, kind := range []string{"containers", "tasks"} {
		out, err := exec.Command(filepath.Join(b.bin, "berth"), "--address", b.sock, "get", kind, "-o", "json").Output()
		if err != nil {
			return false
		}
		var objs []object
		if json.Unmarshal(out, &objs) != nil || len(objs) != pairs {
			return false
		}
		for _, o := range objs {
			ok := o.Status.ObservedGeneration >= o.Generation && (kind != "tasks" || o.Status.State == "running")
			for _, c := range o.Status.Conditions {
				if c.Type == "Ready" && c.Status != "True" {
					ok = false
				}
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

func (b *bench) count(args ...string) int {
	out, err := exec.Command(filepath.Join(b.bin, "berth"), append([]string{"--address", b.sock}, args...)...).Output()
	if err != nil {
		return -1
	}
	return max(0, len(strings.Split(strings.TrimSpace(string(out)), "\n"))-1)
}

func (b *bench) waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func maxOf(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}
