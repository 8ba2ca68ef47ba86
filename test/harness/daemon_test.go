package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

func TestDaemon_Stub_Lifecycle(t *testing.T) {
	d := StartDaemon(t, stubOptions())
	if len(d.Socket) >= 108 {
		t.Errorf("socket path is %d bytes, want < 108: %s", len(d.Socket), d.Socket)
	}
	st, err := os.Stat(d.State)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir: got %v, %v; want mode 0700", st.Mode(), err)
	}
	pid := d.PID()
	if pid == 0 || !d.Running() {
		t.Fatalf("got PID %d, running %v; want a running daemon", pid, d.Running())
	}

	if got, want := d.MustCLI(t, "-n", "ns1", "get", "tasks"), "args: -n ns1 get tasks\n"; got != want {
		t.Errorf("MustCLI: got %q, want %q", got, want)
	}
	if r := d.CLI("fail"); r.ExitCode != 2 || !strings.Contains(r.Stderr, "failing on purpose") {
		t.Errorf("CLI fail: got %s; want exit 2 with the error on stderr", r)
	}
	if r := d.CLIStdin("kind: Task\nname: x\n", "stdin"); r.ExitCode != 0 || r.Stdout != "args: stdin kind: Task name: x\n" {
		t.Errorf("CLIStdin: got %s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := d.CLICommand(ctx, "streamed").Output(); err != nil || string(out) != "args: streamed\n" {
		t.Errorf("CLICommand: got %q, %v", out, err)
	}
	for _, want := range []string{"stubd: ready", "--root " + d.Root, "--manifests " + d.Manifests,
		"--metrics-address " + d.MetricsAddr, "--log-level debug"} {
		if !strings.Contains(d.Log(), want) {
			t.Errorf("log lacks %q:\n%s", want, d.Log())
		}
	}

	d.Restart()
	if d.PID() == pid || d.PID() == 0 {
		t.Errorf("after Restart: PID %d, was %d; want a new process", d.PID(), pid)
	}
	if !strings.Contains(d.Log(), "stubd: stopping") || !strings.Contains(d.Log(), "=== harness: start 2 of berthd ===") {
		t.Errorf("log does not show the stop and the second start:\n%s", d.Log())
	}

	pid = d.PID()
	d.Kill9()
	if d.Running() || !procGone(pid) {
		t.Fatalf("after Kill9: running %v, process %d gone %v", d.Running(), pid, procGone(pid))
	}
	if _, err := os.Stat(d.Socket); err != nil {
		t.Errorf("socket should be left behind by a kill -9: %v", err)
	}
	d.Restart() // on the stale socket, as after a crash
	d.MustCLI(t, "ping")

	d.Stop()
	d.Stop() // stopping twice does nothing
	if d.Running() {
		t.Error("running after Stop")
	}
}

func TestDaemon_Stub_Config(t *testing.T) {
	opts := stubOptions()
	opts.Config = "root: /elsewhere\n"
	opts.Args = []string{"--log-level", "info"}
	opts.Env = []string{"STUBD_UNUSED=1"}
	d := StartDaemon(t, opts)
	b, err := os.ReadFile(d.ConfigPath)
	if err != nil || string(b) != opts.Config {
		t.Errorf("config file: got %q, %v; want %q", b, err, opts.Config)
	}
	if !strings.Contains(d.Log(), "--config "+d.ConfigPath+" --log-level info") {
		t.Errorf("args not passed in order:\n%s", d.Log())
	}
}

func TestDaemon_Stub_MetricsPortTaken(t *testing.T) {
	opts := stubOptions()
	opts.Env = []string{"STUBD_METRICS_BUSY_ONCE=" + filepath.Join(t.TempDir(), "once")}
	d := StartDaemon(t, opts)
	log := d.Log()
	if !strings.Contains(log, "address already in use") || !strings.Contains(log, "=== harness: start 2 of berthd ===") {
		t.Errorf("want a failed first start and a second one:\n%s", log)
	}
	if !strings.Contains(log, "--metrics-address "+d.MetricsAddr+" ") {
		t.Errorf("the second start does not use %s:\n%s", d.MetricsAddr, log)
	}
}

// fakeTB records failures instead of failing the real test, so the
// harness's own failure paths can be checked. Fatal ends the goroutine
// that runTB runs the function in.
type fakeTB struct {
	*testing.T
	mu   sync.Mutex
	msgs []string
}

func (f *fakeTB) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, s)
}
func (f *fakeTB) Errorf(format string, a ...any) { f.record(fmt.Sprintf(format, a...)) }
func (f *fakeTB) Error(a ...any)                 { f.record(fmt.Sprint(a...)) }
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.record(fmt.Sprintf(format, a...))
	runtime.Goexit()
}
func (f *fakeTB) Fatal(a ...any) { f.record(fmt.Sprint(a...)); runtime.Goexit() }
func (f *fakeTB) Failed() bool   { return len(f.failures()) > 0 }
func (f *fakeTB) failures() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}

func runTB(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestDaemon_Stub_Failures(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		want string // in the recorded failure
		stop bool   // call Stop (otherwise the failure is at start)
	}{
		{"exits at start", "STUBD_FAIL_START=1", "berthd exited during start (exit status 1)", false},
		{"unclean exit on SIGTERM", "STUBD_TERM_EXIT=3", "exited uncleanly on SIGTERM: exit status 3", true},
		{"ignores SIGTERM", "STUBD_IGNORE_TERM=1", "did not exit within 200ms of SIGTERM and was killed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := stubOptions()
			opts.Env = []string{tc.env}
			opts.StopTimeout = 200 * time.Millisecond
			var d *Daemon
			f := runTB(t, func(tb testing.TB) {
				d = StartDaemon(tb, opts)
				if tc.stop {
					d.Stop()
				}
			})
			if got := f.failures(); !strings.Contains(got, tc.want) {
				t.Errorf("got failures %q, want one containing %q", got, tc.want)
			}
			if tc.stop && d.Running() {
				t.Error("daemon still running after Stop")
			}
		})
	}
}

func TestDaemon_Stub_CleanupKillsShimsAndUnmounts(t *testing.T) {
	var dirs []string
	var shim, container int
	t.Run("daemon", func(t *testing.T) {
		d := StartDaemon(t, stubOptions())
		dirs = []string{d.Root, d.State}
		fmt.Sscan(d.MustCLI(t, "spawn-shim"), &shim)
		if got := shimPIDs(dirs); len(got) != 1 || got[0] != shim {
			t.Errorf("shimPIDs: got %v, want [%d]", got, shim)
		}
		if os.Geteuid() == 0 {
			mnt := strings.TrimSpace(d.MustCLI(t, "mount"))
			want := []string{filepath.Join(mnt, "inner"), mnt}
			if got := MountsUnder(d.Root); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("MountsUnder: got %v, want %v", got, want)
			}
		} else {
			t.Log("not root: mount cleanup not exercised")
		}
		container = startRuncContainer(t, d)
		if procGone(shim) {
			t.Fatalf("stub shim %d exited by itself; the cleanup would not be tested", shim)
		}
		d.Kill9() // as after a crash: shims, containers and mounts stay
	})
	if container != 0 && procStart(container) != 0 && !procGone(container) {
		t.Errorf("container init %d still running after the test's cleanup", container)
	}
	if shim == 0 {
		t.Fatal("no shim was started")
	}
	if !procGone(shim) {
		t.Errorf("shim %d still running after the test's cleanup", shim)
	}
	if got := MountsUnder(dirs...); len(got) != 0 {
		t.Errorf("mounts left after the test's cleanup: %v", got)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", d, err)
		}
	}
}

// startRuncContainer runs a busybox sleep with runc, its state under
// STATE/runc as berthd's would be, and returns its init PID; 0 if root, runc
// or a static busybox is missing.
func startRuncContainer(t *testing.T, d *Daemon) int {
	runc, err := exec.LookPath("runc")
	if err != nil || os.Geteuid() != 0 {
		t.Log("no runc or not root: container cleanup not exercised")
		return 0
	}
	bundle := filepath.Join(d.Root, "bundle")
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Log("no /bin/busybox: container cleanup not exercised")
		return 0
	}
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(bundle, "config.json")
	var cfg map[string]any
	b, _ := os.ReadFile(cfgPath)
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg["process"].(map[string]any)
	p["args"] = []string{"/bin/busybox", "sleep", "1000"}
	p["terminal"] = false
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	runcRoot := filepath.Join(d.State, "runc")
	// No stdio of ours: the container would hold the pipes open.
	if err := exec.Command(runc, "--root", runcRoot, "run", "-d", "--bundle", bundle, "c1").Run(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	out, err := exec.Command(runc, "--root", runcRoot, "state", "c1").Output()
	if err != nil {
		t.Fatalf("runc state: %v", err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid == 0 {
		t.Fatalf("runc state: %q, %v", out, err)
	}
	return st.Pid
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 5*time.Second, func() (bool, string) { n++; return n == 3, "" })
	if n != 3 {
		t.Errorf("got %d calls, want 3", n)
	}
	start := time.Now()
	f := runTB(t, func(tb testing.TB) {
		Eventually(tb, 50*time.Millisecond, func() (bool, string) { return false, "still waiting" })
	})
	if got := f.failures(); !strings.Contains(got, "not met within 50ms: still waiting") {
		t.Errorf("got %q", got)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Eventually took %v for a 50ms timeout", el)
	}
}

// TestDaemon_Real runs the harness against bin/berthd when it is built.
func TestDaemon_Real(t *testing.T) {
	testutil.Bin(t, "berthd")
	testutil.RequireRoot(t)
	d := StartDaemon(t, DaemonOptions{})
	pid := d.PID()
	d.Restart()
	if d.PID() == pid {
		t.Error("Restart kept the old process")
	}
	d.Kill9()
	d.Restart()
	d.Stop()
}
