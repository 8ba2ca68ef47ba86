// Command bench-runpath measures berth's run path against the runtime's
// own cost, side by side in one run on a shared machine:
//
//   - `berth run --rm busybox true`, `runc run` of the very bundle berth
//     generated (its config.json copied: seccomp, capabilities, mounts,
//     cgroups; its rootfs copied to a plain directory) and, when Debian's
//     containerd is installed, `ctr run --rm`, interleaved round by round,
//     medians and ratios;
//   - where berth's time goes: the CLI's own spans (BERTH_SPANS=1) and
//     berthd's (the debug "spans" line of every API call), median per step;
//   - shim RSS and PSS with C detached sleep tasks, berthd's RSS with C and
//     with 2C tasks;
//   - kill -9 of berthd with C tasks running: time from its start until the
//     API lists all of them running with their old pids (none restarted).
//
// Every row prints the command that produced it. Needs root, make build
// and the test images. Not a test: its figures are timings.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin", "directory of berthd, berth and berth-shim")
	images := flag.String("images", ".cache/testimages", "test images (make testimages)")
	n := flag.Int("n", 20, "rounds of the interleaved run comparison (≥ 15)")
	c := flag.Int("containers", 50, "detached tasks for the memory and restart figures")
	base := flag.String("base", "", "bin directory of an earlier build to interleave as a fourth command (before/after)")
	flag.Parse()
	if err := run(*bin, *images, *n, *c, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench-runpath:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin, work, state, sock, log string
	d                           *exec.Cmd
}

// newBench starts a berthd of the binaries in bin under its own work
// directory, with the busybox test image imported and run once.
func newBench(bin, images string) (*bench, error) {
	bin, _ = filepath.Abs(bin)
	work, err := os.MkdirTemp("/tmp", "berth-rp-")
	if err != nil {
		return nil, err
	}
	b := &bench{bin: bin, work: work, state: filepath.Join(work, "state"), log: filepath.Join(work, "berthd.log")}
	b.sock = filepath.Join(b.state, "berth.sock")
	// The state directory is /run/berth in production: a tmpfs, as here.
	if err := os.MkdirAll(b.state, 0o700); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", b.state, "tmpfs", 0, "size=256m,mode=0700"); err != nil {
		return nil, fmt.Errorf("mount tmpfs state: %w", err)
	}
	if err := b.startBerthd(); err != nil {
		b.cleanup()
		return nil, err
	}
	if _, err := b.berth("image", "import", filepath.Join(images, "busybox")); err != nil {
		b.cleanup()
		return nil, err
	}
	if _, err := b.berth("run", "--rm", "busybox:latest", "warm", "true"); err != nil {
		b.cleanup()
		return nil, err
	}
	return b, nil
}

func run(bin, images string, n, c int, base string) (err error) {
	b, err := newBench(bin, images)
	if err != nil {
		return err
	}
	defer b.cleanup()
	work := b.work
	var old *bench
	if base != "" {
		if old, err = newBench(base, images); err != nil {
			return fmt.Errorf("base build: %w", err)
		}
		defer old.cleanup()
	}
	bundle, err := b.copyBundle()
	if err != nil {
		return err
	}
	ctr, stopCtr, err := b.startContainerd()
	if err != nil {
		return err
	}
	defer stopCtr()

	// Interleaved rounds; the order within a round rotates so that none
	// of the three always follows the same one.
	runcRoot := filepath.Join(work, "runc")
	type cmdSpec struct {
		name string
		argv func(i int) []string
		env  []string
	}
	cmds := []cmdSpec{
		{"berth", func(i int) []string {
			return []string{filepath.Join(bin, "berth"), "--address", b.sock, "run", "--rm", "busybox:latest", fmt.Sprintf("b%d", i), "true"}
		}, []string{"BERTH_SPANS=1"}},
		{"runc", func(i int) []string {
			return []string{"runc", "--root", runcRoot, "run", "-b", bundle, fmt.Sprintf("bench-runc-%d", i)}
		}, nil},
	}
	if ctr != nil {
		cmds = append(cmds, cmdSpec{"ctr", func(i int) []string {
			return append(append([]string(nil), ctr...), "run", "--rm", "docker.io/library/bb:latest", fmt.Sprintf("c%d", i), "true")
		}, nil})
	}
	if old != nil {
		cmds = append(cmds, cmdSpec{"base", func(i int) []string {
			return []string{filepath.Join(old.bin, "berth"), "--address", old.sock, "run", "--rm", "busybox:latest", fmt.Sprintf("o%d", i), "true"}
		}, nil})
	}
	logStart := fileSize(b.log)
	walls := map[string][]time.Duration{}
	cli := map[string][]time.Duration{}
	for i := 0; i < n; i++ {
		for k := range cmds {
			cs := cmds[(i+k)%len(cmds)]
			argv := cs.argv(i)
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), cs.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			t := time.Now()
			err := cmd.Run()
			wall := time.Since(t)
			if err != nil {
				return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
			}
			walls[cs.name] = append(walls[cs.name], wall)
			if cs.name == "berth" {
				sp := parseCLISpans(stderr.String())
				if m, ok := sp["main"]; ok {
					cli["process start+exit (wall − main)"] = append(cli["process start+exit (wall − main)"], wall-m)
				}
				for k, v := range sp {
					cli[k] = append(cli[k], v)
				}
			}
		}
	}
	server, err := parseServerSpans(b.log, logStart)
	if err != nil {
		return err
	}

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n%s, %d cores, load average %s (a shared machine: compare the ratios)\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("\n## run path: %d interleaved rounds, medians\n\n", n)
	fmt.Printf("| what | median ms | command |\n|---|---|---|\n")
	fmt.Printf("| `berth run --rm busybox true` | %.1f | `berth run --rm busybox:latest bN true` |\n", ms(median(walls["berth"])))
	fmt.Printf("| `runc run` of the same config.json | %.1f | `runc --root R run -b %s ID` |\n", ms(median(walls["runc"])), "BUNDLE")
	if ctr != nil {
		fmt.Printf("| `ctr run --rm` (containerd %s) | %.1f | `ctr run --rm docker.io/library/bb:latest cN true` |\n", containerdVersion(), ms(median(walls["ctr"])))
	} else {
		fmt.Printf("| `ctr run --rm` | n/a (not installed) | `hack/bench-deps.sh` installs it |\n")
	}
	if old != nil {
		fmt.Printf("| `berth run --rm` of the base build | %.1f | `%s/berth run --rm busybox:latest oN true` |\n", ms(median(walls["base"])), base)
		fmt.Printf("| base ÷ runc | %.2f× | before |\n", ratio(walls["base"], walls["runc"]))
	}
	fmt.Printf("| berth ÷ runc | %.2f× | aim ≤ 1.5× |\n", ratio(walls["berth"], walls["runc"]))
	if ctr != nil {
		fmt.Printf("| berth ÷ ctr | %.2f× | aim ≤ 0.5× |\n", ratio(walls["berth"], walls["ctr"]))
	} else {
		fmt.Printf("| berth ÷ ctr | n/a (not installed) | |\n")
	}

	fmt.Printf("\n## where one `berth run --rm` goes (median of %d per step; medians do not add up exactly)\n\n", n)
	fmt.Printf("| step | median ms | from |\n|---|---|---|\n")
	row := func(name string, ds []time.Duration, from string) {
		if len(ds) > 0 {
			fmt.Printf("| %s | %.2f | %s |\n", name, ms(median(ds)), from)
		}
	}
	row("CLI process start+exit (wall − main)", cli["process start+exit (wall − main)"], "BERTH_SPANS=1 berth …")
	row("CLI dial", cli["dial"], "BERTH_SPANS=1 berth …")
	for _, m := range []string{"Containers.Create", "Tasks.Create", "Tasks.Start", "Tasks.Wait", "Tasks.Delete", "Containers.Delete"} {
		rt := cli["rpc."+m]
		row("**"+m+"** round trip", rt, "CLI")
		ss := server[m]
		if ss == nil {
			continue
		}
		row("  in berthd", ss.m["total"], "berthd --log-level debug, msg=spans")
		for _, step := range ss.order {
			if step != "total" {
				row("    "+step, ss.m[step], "berthd spans")
			}
		}
	}
	fmt.Printf("\nshim.create is the shim's Create call: `runc create` plus the shim's stdio setup; shim.start-task is `runc start`; shim.delete is `runc delete`.\n")

	if err := b.memoryAndRestart(c); err != nil {
		return err
	}
	return nil
}

// copyBundle makes a container exactly as `berth run --rm busybox true`
// does (through the API: container create, task create and start, run to
// its exit), copies its bundle's config.json and its rootfs into a plain
// directory, and deletes it again. runc runs that bundle as-is.
func (b *bench) copyBundle() (string, error) {
	if _, err := b.berth("container", "create", "busybox:latest", "ref", "true"); err != nil {
		return "", err
	}
	if _, err := b.berth("task", "start", "ref"); err != nil {
		return "", err
	}
	src := filepath.Join(b.state, "default", "ref")
	dst := filepath.Join(b.work, "bundle")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-a", filepath.Join(src, "config.json"), filepath.Join(src, "rootfs"), dst+"/").CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy bundle: %v %s", err, out)
	}
	if _, err := b.berth("task", "rm", "ref"); err != nil {
		return "", err
	}
	if _, err := b.berth("container", "rm", "ref"); err != nil {
		return "", err
	}
	return dst, nil
}

func (b *bench) startBerthd() error {
	logf, err := os.OpenFile(b.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	b.d = exec.Command(filepath.Join(b.bin, "berthd"), "--root", filepath.Join(b.work, "root"), "--state", b.state,
		"--address", b.sock, "--metrics-address", "off", "--manifests", "", "--cri-address", "",
		"--cni-conf-dir", filepath.Join(b.work, "cni"), "--log-level", "debug")
	b.d.Stderr = logf
	if err := b.d.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if c, err := net.Dial("unix", b.sock); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("berthd did not start (log %s)", b.log)
}

func (b *bench) berth(args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(b.bin, "berth"), append([]string{"--address", b.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// startContainerd runs Debian's containerd under the work directory with
// a busybox image built by hack/mkimage, or returns nil when absent.
func (b *bench) startContainerd() ([]string, func(), error) {
	if _, err := exec.LookPath("containerd"); err != nil {
		return nil, func() {}, nil
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		return nil, func() {}, nil
	}
	dir := filepath.Join(b.work, "ctrd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("version = 2\n"), 0o600); err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(dir, "c.sock")
	cmd := exec.Command("containerd", "--config", cfg, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(b.state, "ctrd"), "--address", sock)
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait(); logf.Close() }
	ctr := []string{"ctr", "--address", sock}
	ok := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if exec.Command(ctr[0], append(ctr[1:], "version")...).Run() == nil {
			ok = true
			break
		}
	}
	if !ok {
		stop()
		return nil, nil, errors.New("containerd did not start")
	}
	tar := filepath.Join(dir, "bb.tar")
	steps := [][]string{
		{"go", "run", "./hack/mkimage", "-name", "docker.io/library/bb:latest", "-o", tar},
		append(append([]string(nil), ctr...), "images", "import", tar),
		append(append([]string(nil), ctr...), "run", "--rm", "docker.io/library/bb:latest", "warm", "true"),
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			stop()
			return nil, nil, fmt.Errorf("%s: %v %s", strings.Join(s, " "), err, out)
		}
	}
	return ctr, stop, nil
}

func containerdVersion() string {
	out, _ := exec.Command("containerd", "--version").Output()
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return "?"
}

func (b *bench) memoryAndRestart(c int) error {
	start := func(from, to int) error {
		for i := from; i < to; i++ {
			if _, err := b.berth("run", "-d", "busybox:latest", fmt.Sprintf("s%d", i), "sleep", "100000"); err != nil {
				return err
			}
		}
		return nil
	}
	if err := start(0, c); err != nil {
		return err
	}
	// Let the shims settle (they drop their start-up pages once their
	// task has run a second).
	time.Sleep(3 * time.Second)
	var rss, pss []float64
	for i := 0; i < c; i++ {
		pid, err := readPid(filepath.Join(b.state, "default", fmt.Sprintf("s%d", i), "shim.pid"))
		if err != nil {
			return err
		}
		r, p := memKiB(pid)
		rss, pss = append(rss, r), append(pss, p)
	}
	dRSS, _ := memKiB(b.d.Process.Pid)
	fmt.Printf("\n## memory (%d detached `sleep` tasks)\n\n| what | MiB | command |\n|---|---|---|\n", c)
	fmt.Printf("| berth-shim RSS, mean of %d (max %.1f) | %.2f | VmRSS of each shim.pid; aim ≤ 4 |\n", c, maxOf(rss)/1024, mean(rss)/1024)
	fmt.Printf("| berth-shim PSS, mean of %d | %.2f | /proc/PID/smaps_rollup |\n", c, mean(pss)/1024)
	fmt.Printf("| berthd RSS with %d running | %.1f | VmRSS |\n", c, dRSS/1024)

	// Restart: kill -9 berthd with c running, then time from its start
	// until the API lists every task running with the pid it had; five
	// times, the median reported.
	before, err := b.listTasks()
	if err != nil {
		return err
	}
	var tooks []time.Duration
	restarted := 0
	for r := 0; r < 5; r++ {
		_ = b.d.Process.Kill()
		_ = b.d.Wait()
		t0 := time.Now()
		if err := b.startBerthd(); err != nil {
			return err
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				return errors.New("tasks not all reattached after 30 s")
			}
			after, err := b.listTasks()
			if err != nil || len(after) < len(before) {
				continue
			}
			same := 0
			for id, t := range before {
				if a, ok := after[id]; ok && a.Pid == t.Pid && a.Status == "running" {
					same++
				}
			}
			if same == len(before) {
				tooks = append(tooks, time.Since(t0))
				break
			}
		}
		if after, err := b.listTasks(); err == nil {
			for id, t := range before {
				if a, ok := after[id]; !ok || a.Pid != t.Pid {
					restarted++
				}
			}
		}
	}
	sort.Slice(tooks, func(i, j int) bool { return tooks[i] < tooks[j] })
	fmt.Printf("\n## restart (kill -9 berthd with %d running, 5 times)\n\n| what | figure | command |\n|---|---|---|\n", c)
	fmt.Printf("| berthd exec → all %d listed running, same pids | median %.0f ms (min %.0f, max %.0f) | `berth task ls -o json` polled; aim ≤ 150 ms |\n", c, ms(median(tooks)), ms(tooks[0]), ms(tooks[len(tooks)-1]))
	fmt.Printf("| tasks restarted | %d | pids before and after each restart |\n", restarted)
	// berthd's own account of the restart (its last start in the log).
	if rec, serve := lastLogValue(b.log, "recovered tasks", "took"), lastLogValue(b.log, "berthd serving", "startup"); rec != "" || serve != "" {
		fmt.Printf("| of which (last restart): tasks recovered in / berthd serving after | %s / %s | berthd log: \"recovered tasks\" took, \"berthd serving\" startup |\n", rec, serve)
	}

	if err := start(c, 2*c); err != nil {
		return err
	}
	time.Sleep(time.Second)
	dRSS, _ = memKiB(b.d.Process.Pid)
	fmt.Printf("| berthd RSS with %d running | %.1f MiB | VmRSS; aim ≤ 40 MiB |\n", 2*c, dRSS/1024)
	return nil
}

type taskView struct {
	ID     string `json:"id"`
	Pid    uint32 `json:"pid"`
	Status string `json:"status"`
}

// listTasks is `berth task ls -o json` (hack/ programs speak to berthd
// through the CLI only, as test/arch_test.go wants): one CLI process per
// poll, a few milliseconds of the restart figure.
func (b *bench) listTasks() (map[string]taskView, error) {
	out, err := exec.Command(filepath.Join(b.bin, "berth"), "--address", b.sock, "--connect-timeout", "50ms", "task", "ls", "-o", "json").Output()
	if err != nil {
		return nil, err
	}
	var ts []taskView
	if err := json.Unmarshal(out, &ts); err != nil {
		return nil, err
	}
	m := map[string]taskView{}
	for _, t := range ts {
		m[t.ID] = t
	}
	return m, nil
}

func (b *bench) cleanup() {
	if b.d != nil && b.d.Process != nil {
		if ts, err := b.listTasks(); err == nil {
			for id := range ts {
				_, _ = b.berth("task", "rm", "-f", id)
				_, _ = b.berth("container", "rm", id)
			}
		}
		_ = b.d.Process.Signal(syscall.SIGTERM)
		_ = b.d.Wait()
	}
	// Whatever is still mounted under the work directory, deepest first.
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var mps []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], b.work) {
			mps = append(mps, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mps)))
	for _, m := range mps {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if os.Getenv("BENCH_KEEP_LOG") != "" {
		_ = exec.Command("cp", b.log, os.Getenv("BENCH_KEEP_LOG")).Run()
	}
	_ = os.RemoveAll(b.work)
}

// parseCLISpans reads "berth spans: main=… dial=… rpc.X.Y=…".
func parseCLISpans(stderr string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, l := range strings.Split(stderr, "\n") {
		rest, ok := strings.CutPrefix(l, "berth spans: ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			if d, err := time.ParseDuration(v); err == nil {
				out[k] = d
			}
		}
	}
	return out
}

// parseServerSpans reads berthd's "msg=spans method=/berth.tasks.v1.Tasks/Create
// total=… step=…" lines written after offset, by method ("Tasks.Create").
func parseServerSpans(path string, offset int64) (map[string]*orderedSteps, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return nil, err
	}
	out := map[string]*orderedSteps{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, " msg=spans ") {
			continue
		}
		var method string
		kvs := map[string]time.Duration{}
		var order []string
		for _, kv := range strings.Fields(l) {
			k, v, _ := strings.Cut(kv, "=")
			if k == "method" {
				m := v
				if i := strings.LastIndexByte(m, '.'); i >= 0 {
					m = m[i+1:]
				}
				method = strings.ReplaceAll(m, "/", ".")
				continue
			}
			if d, err := time.ParseDuration(v); err == nil {
				kvs[k] = d
				order = append(order, k)
			}
		}
		if method == "" {
			continue
		}
		st := out[method]
		if st == nil {
			st = &orderedSteps{m: map[string][]time.Duration{}}
			out[method] = st
		}
		for _, k := range order {
			if _, seen := st.m[k]; !seen {
				st.order = append(st.order, k)
			}
			st.m[k] = append(st.m[k], kvs[k])
		}
	}
	return out, sc.Err()
}

type orderedSteps struct {
	order []string
	m     map[string][]time.Duration
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func readPid(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// memKiB is a process's VmRSS and Pss in KiB.
func memKiB(pid int) (rss, pss float64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				rss, _ = strconv.ParseFloat(f[1], 64)
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
				pss, _ = strconv.ParseFloat(f[1], 64)
			}
		}
	}
	return rss, pss
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b []time.Duration) float64 {
	if m := median(b); m > 0 {
		return float64(median(a)) / float64(m)
	}
	return 0
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		if x > m {
			m = x
		}
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// lastLogValue is the value of key on the last line of berthd's log whose
// message is msg ("" when none).
func lastLogValue(path, msg, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	val := ""
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "msg=\""+msg+"\"") {
			continue
		}
		for _, kv := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(kv, key+"="); ok {
				val = v
			}
		}
	}
	return val
}
