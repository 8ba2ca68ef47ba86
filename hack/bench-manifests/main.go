// Command bench-manifests measures the declarative path from outside
// berthd: the time from a manifest file being renamed into the watched
// directory until each container's process is running (it touches a marker
// file on a host bind mount as its first act), for 1, 10 and 100 tasks whose
// image is already unpacked; and berthd's CPU time while 100 tasks run idle.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin", "directory of berthd and berth")
	idle := flag.Duration("idle", 5*time.Minute, "how long to measure idle CPU with 100 tasks")
	flag.Parse()
	if err := run(*bin, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench-manifests:", err)
		os.Exit(1)
	}
}

func run(bin string, idle time.Duration) error {
	bin, _ = filepath.Abs(bin)
	work, err := os.MkdirTemp("/tmp", "berth-bm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	manifests, out, staging := filepath.Join(work, "manifests"), filepath.Join(work, "out"), filepath.Join(work, "staging")
	for _, d := range []string{manifests, out, staging} {
		os.MkdirAll(d, 0o755)
	}
	archive := filepath.Join(work, "busybox.tar")
	if b, err := exec.Command("go", "run", "./hack/mkimage", "-name", "bench.local/busybox:latest", "-o", archive).CombinedOutput(); err != nil {
		return fmt.Errorf("mkimage: %v %s", err, b)
	}
	state := filepath.Join(work, "state")
	sock := filepath.Join(state, "berth.sock")
	cmd := exec.Command(filepath.Join(bin, "berthd"), "--root", filepath.Join(work, "root"), "--state", state,
		"--address", sock, "--manifests", manifests, "--metrics-address", "off", "--log-level", "warn", "--cri-address", "", "--cni-conf-dir", filepath.Join(work, "cni"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		// Leave no containers behind: drop every manifest and wait for teardown.
		clear(manifests)
		waitFor(2*time.Minute, func() bool { return countTasks(bin, sock) == 0 })
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	if !waitFor(10*time.Second, func() bool { c, err := net.Dial("unix", sock); return err == nil && c.Close() == nil }) {
		return fmt.Errorf("berthd did not start")
	}
	image := fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec: {ref: "bench.local/busybox:latest", pullPolicy: Never, source: {archive: %q}}
`, archive)
	if err := place(staging, manifests, "image.yaml", image); err != nil {
		return err
	}
	if !waitFor(30*time.Second, func() bool { return strings.Contains(berth(bin, sock, "image", "ls"), "overlayfs") }) {
		return fmt.Errorf("image not unpacked")
	}
	fmt.Printf("\nmanifest → running latency (file renamed into the directory until the process runs)\n")
	fmt.Printf("command: one file of N Container+Task pairs (busybox, `touch /out/NAME; exec sleep`) written beside the\n")
	fmt.Printf("watched directory and renamed into it; each latency is until /out/NAME appears on the host\n\n")
	fmt.Printf("%-8s %8s %10s %10s %10s\n", "tasks", "runs", "p50 ms", "p95 ms", "max ms")
	for _, n := range []int{1, 10, 50, 100} {
		runs := 1
		if n == 1 {
			runs = 10
		}
		var lat []time.Duration
		for r := 0; r < runs; r++ {
			prefix := fmt.Sprintf("b%d-%d-", n, r)
			l, err := measure(staging, manifests, out, prefix, n)
			if err != nil {
				return err
			}
			lat = append(lat, l...)
			if n == 100 {
				if idleReport, err = idleCPU(cmd.Process.Pid, idle); err != nil {
					return err
				}
			}
			os.Remove(filepath.Join(manifests, prefix+"tasks.yaml"))
			if !waitFor(3*time.Minute, func() bool { return countTasks(bin, sock) == 0 }) {
				return fmt.Errorf("tasks of %s not torn down", prefix)
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Printf("%-8d %8d %10.0f %10.0f %10.0f\n", n, runs, ms(pct(lat, 50)), ms(pct(lat, 95)), ms(lat[len(lat)-1]))
	}
	fmt.Print(idleReport)
	fmt.Println("\nreference: kubelet rescans static pods every 20 s, k3s polls every 15 s; target for one task: < 100 ms")
	return nil
}

var idleReport string

func measure(staging, manifests, out, prefix string, n int) ([]time.Duration, error) {
	var b strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		fmt.Fprintf(&b, `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: %s}
spec:
  image: busybox
  command: [sh, -c, "touch /out/%s; exec sleep 100000"]
  mounts: [{type: bind, source: %q, target: /out}]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %s}
spec: {container: %s, stopTimeout: 1s}
`, name, name, out, name, name)
	}
	start := time.Now()
	if err := place(staging, manifests, prefix+"tasks.yaml", b.String()); err != nil {
		return nil, err
	}
	seen := map[string]time.Duration{}
	deadline := time.Now().Add(3 * time.Minute)
	for len(seen) < n {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d tasks running after 3 minutes", len(seen), n)
		}
		entries, _ := os.ReadDir(out)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				if _, ok := seen[e.Name()]; !ok {
					seen[e.Name()] = time.Since(start)
				}
			}
		}
		time.Sleep(2 * time.Millisecond) // polling resolution of the measurement
	}
	var lat []time.Duration
	for _, d := range seen {
		lat = append(lat, d)
	}
	return lat, nil
}

// idleCPU measures berthd's CPU time over d with the tasks running.
func idleCPU(pid int, d time.Duration) (string, error) {
	before, err := cpuTime(pid)
	if err != nil {
		return "", err
	}
	time.Sleep(d) // the measurement window itself
	after, err := cpuTime(pid)
	if err != nil {
		return "", err
	}
	used := after - before
	return fmt.Sprintf("\nberthd CPU time over %s idle with 100 tasks running: %.2f s (%.3f %% of one core)\n", d, used.Seconds(), 100*used.Seconds()/d.Seconds()), nil
}

func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100, nil // USER_HZ
}

// place writes a manifest beside the directory and renames it in, as an
// operator or git-sync would, so berthd never sees a half-written file.
func place(staging, dir, name, body string) error {
	tmp := filepath.Join(staging, name)
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

func clear(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

func berth(bin, sock string, args ...string) string {
	out, _ := exec.Command(filepath.Join(bin, "berth"), append([]string{"--address", sock}, args...)...).Output()
	return string(out)
}

func countTasks(bin, sock string) int {
	out := strings.TrimSpace(berth(bin, sock, "task", "ls"))
	if out == "" {
		return -1
	}
	return strings.Count(out, "\n")
}

func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func pct(s []time.Duration, p int) time.Duration { return s[(len(s)-1)*p/100] }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
