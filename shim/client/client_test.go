package client_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/shim/client"
	"berth.dev/berth/shim/logs"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestShim_ExitStatus(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct {
		name string
		args []string
		want uint32
	}{
		{"true", []string{"true"}, 0},
		{"exit3", []string{"sh", "-c", "exit 3"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "exit-" + tc.name
			b := e.bundle(t, id, tc.args)
			c := e.start(t, id, b, nil)
			w := run(t, c, id)
			if w.ExitStatus != tc.want {
				t.Errorf("exit status: got %d, want %d", w.ExitStatus, tc.want)
			}
			// The record is on disk before Wait answered.
			rec, err := client.ReadExit(b)
			if err != nil {
				t.Fatalf("ReadExit: %v", err)
			}
			if rec.ExitStatus != tc.want || !rec.ExitedAt.Equal(w.ExitedAt.AsTime()) {
				t.Errorf("exit.json: got %+v, want status %d at %v", rec, tc.want, w.ExitedAt.AsTime())
			}
			ctx := context.Background()
			st, err := c.State(ctx, &shimapi.StateRequest{Id: id})
			if err != nil || st.Status != shimapi.Status_STOPPED || st.ExitStatus != tc.want {
				t.Errorf("state: got %v %v, want STOPPED %d", st, err, tc.want)
			}
			d, err := c.Delete(ctx, &shimapi.DeleteRequest{Id: id})
			if err != nil || d.ExitStatus != tc.want {
				t.Fatalf("delete: got %v %v, want exit %d", d, err, tc.want)
			}
			if _, err := c.State(ctx, &shimapi.StateRequest{Id: id}); !errdefs.IsNotFound(err) {
				t.Errorf("state after delete: got %v, want NotFound", err)
			}
			pid := c.Pid()
			if _, err := c.Shutdown(ctx, &shimapi.ShutdownRequest{Id: id}); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			eventually(t, "the shim to exit", func() bool { return !c.Alive() })
			if _, err := os.Stat(filepath.Join(b, "shim.sock")); !os.IsNotExist(err) {
				t.Errorf("shim.sock after shutdown of pid %d: %v", pid, err)
			}
		})
	}
}

func TestShim_Signals(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		opts []specOpt
		want uint32
	}{
		// In its own pid namespace sleep is pid 1, which ignores SIGTERM
		// without a handler; in the host's it dies of it.
		{"term", syscall.SIGTERM, []specOpt{hostPID}, 143},
		{"kill", syscall.SIGKILL, nil, 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "sig-" + tc.name
			c := e.start(t, id, e.bundle(t, id, []string{"sleep", "60"}, tc.opts...), nil)
			ctx := context.Background()
			if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: uint32(tc.sig)}); err != nil {
				t.Fatal(err)
			}
			w, err := c.Wait(ctx, &shimapi.WaitRequest{Id: id})
			if err != nil {
				t.Fatal(err)
			}
			if w.ExitStatus != tc.want {
				t.Errorf("exit status: got %d, want %d", w.ExitStatus, tc.want)
			}
			if _, err := c.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: 9}); !errdefs.IsNotFound(err) {
				t.Errorf("kill after exit: got %v, want NotFound", err)
			}
		})
	}
}

func TestShim_PauseResume(t *testing.T) {
	e := setup(t)
	id := "pause"
	c := e.start(t, id, e.bundle(t, id, []string{"sleep", "60"}), nil)
	ctx := context.Background()
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	freezer := "/sys/fs/cgroup/freezer/" + cgroupParent + "/" + id + "/freezer.state"
	if _, err := os.Stat(freezer); err != nil {
		freezer = "" // cgroup v2: no freezer.state; the status check still holds
	}
	for _, step := range []struct {
		do     func() error
		status shimapi.Status
		state  string
	}{
		{func() error { _, err := c.Pause(ctx, &shimapi.PauseRequest{Id: id}); return err }, shimapi.Status_PAUSED, "FROZEN"},
		{func() error { _, err := c.Resume(ctx, &shimapi.ResumeRequest{Id: id}); return err }, shimapi.Status_RUNNING, "THAWED"},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		st, err := c.State(ctx, &shimapi.StateRequest{Id: id})
		if err != nil || st.Status != step.status {
			t.Errorf("state: got %v %v, want %v", st.GetStatus(), err, step.status)
		}
		if freezer != "" {
			if got := strings.TrimSpace(readFile(freezer)); got != step.state {
				t.Errorf("freezer.state: got %q, want %q", got, step.state)
			}
		}
	}
	if _, err := c.Resume(ctx, &shimapi.ResumeRequest{Id: id}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resume of a running task: got %v, want FailedPrecondition", err)
	}
	if _, err := c.Delete(ctx, &shimapi.DeleteRequest{Id: id}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("delete of a running task: got %v, want FailedPrecondition", err)
	}
	if _, err := c.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if w, err := c.Wait(ctx, &shimapi.WaitRequest{Id: id}); err != nil || w.ExitStatus != 137 {
		t.Errorf("wait: got %v %v, want 137", w, err)
	}
}

func TestShim_ExecAndLog(t *testing.T) {
	e := setup(t)
	id := "exec"
	b := e.bundle(t, id, []string{"sh", "-c", "echo out; echo err >&2; exec sleep 60"})
	out, readOut := fifo(t, "init-out")
	c := e.start(t, id, b, &shimapi.CreateRequest{Stdio: &shimapi.Stdio{Stdout: out}})
	ctx := context.Background()
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(b, "output.log")
	eventually(t, "the init's output in the log", func() bool {
		s := readFile(logPath)
		return strings.Contains(s, " stdout F out\n") && strings.Contains(s, " stderr F err\n")
	})

	execOut, readExec := fifo(t, "exec-out")
	spec := `{"args":["echo","hi"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}}`
	if _, err := c.Exec(ctx, &shimapi.ExecRequest{Id: id, ExecId: "e1", Spec: []byte(spec), Stdio: &shimapi.Stdio{Stdout: execOut}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id, ExecId: "e1"}); err != nil {
		t.Fatalf("start exec: %v\n%s", err, readFile(filepath.Join(b, "runc.log")))
	}
	w, err := c.Wait(ctx, &shimapi.WaitRequest{Id: id, ExecId: "e1"})
	if err != nil || w.ExitStatus != 0 {
		t.Fatalf("wait exec: got %v %v, want 0", w, err)
	}
	if got := readExec(); got != "hi\n" {
		t.Errorf("exec stdout: got %q, want %q", got, "hi\n")
	}
	if _, err := c.Delete(ctx, &shimapi.DeleteRequest{Id: id, ExecId: "e1"}); err != nil {
		t.Errorf("delete exec: %v", err)
	}
	if strings.Contains(readFile(logPath), "hi") {
		t.Errorf("the exec's output went to the container log")
	}
	if _, err := c.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, &shimapi.WaitRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if got := readOut(); got != "out\n" {
		t.Errorf("init stdout fifo: got %q, want %q", got, "out\n")
	}
}

func TestShim_Terminal(t *testing.T) {
	e := setup(t)
	id := "tty"
	b := e.bundle(t, id, []string{"sh", "-c", "tty; echo hello"}, func(s *specs.Spec) { s.Process.Terminal = true })
	out, readOut := fifo(t, "out")
	c := e.start(t, id, b, &shimapi.CreateRequest{Stdio: &shimapi.Stdio{Stdout: out, Terminal: true}})
	if w := run(t, c, id); w.ExitStatus != 0 {
		t.Errorf("exit status: got %d, want 0", w.ExitStatus)
	}
	got := readOut()
	if !strings.Contains(got, "/dev/pts/") || !strings.Contains(got, "hello\r\n") {
		t.Errorf("terminal output: got %q, want a /dev/pts name and hello", got)
	}
	if log := readFile(filepath.Join(b, "output.log")); !strings.Contains(log, " stdout F hello\n") {
		t.Errorf("log: got %q, want hello without CR", log)
	}
}

func TestShim_Stats(t *testing.T) {
	e := setup(t)
	id := "stats"
	c := e.start(t, id, e.bundle(t, id, []string{"sleep", "60"}), nil)
	ctx := context.Background()
	st, err := c.Start(ctx, &shimapi.StartRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Stats(ctx, &shimapi.StatsRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryUsage == 0 || s.MemoryLimit != 64<<20 || s.PidsCurrent < 1 || s.PidsLimit != 100 {
		t.Errorf("stats: got %+v, want memory > 0, limit 64Mi, pids >= 1, pids limit 100", s)
	}
	p, err := c.Pids(ctx, &shimapi.PidsRequest{Id: id})
	if err != nil || len(p.Processes) != 1 || p.Processes[0].Pid != st.Pid {
		t.Errorf("pids: got %v %v, want [%d]", p, err, st.Pid)
	}
}

func TestShim_OOM(t *testing.T) {
	e := setup(t)
	id := "oom"
	// A shell string that doubles until the 8 MiB limit kills it.
	b := e.bundle(t, id, []string{"sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"}, memoryLimit(8<<20))
	c := e.start(t, id, b, nil)
	w := run(t, c, id)
	if w.ExitStatus != 137 || !w.OomKilled {
		t.Errorf("wait: got status %d oom %v, want 137 and oom", w.ExitStatus, w.OomKilled)
	}
	if rec, err := client.ReadExit(b); err != nil || !rec.OOMKilled {
		t.Errorf("exit.json: got %+v %v, want oom_killed", rec, err)
	}
}

func TestShim_ReconnectAfterClientClose(t *testing.T) {
	e := setup(t)
	id := "reconnect"
	b := e.bundle(t, id, []string{"sleep", "60"})
	c := e.start(t, id, b, nil)
	ctx := context.Background()
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c2, err := client.Connect(ctx, b)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c2.Close()
	if st, err := c2.State(ctx, &shimapi.StateRequest{Id: id}); err != nil || st.Status != shimapi.Status_RUNNING {
		t.Fatalf("state: got %v %v, want RUNNING", st, err)
	}
	if _, err := client.Start(ctx, client.Opts{ShimBinary: e.shim, ID: id, Bundle: b}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second shim for the bundle: got %v, want AlreadyExists", err)
	}
}

func TestShim_KillShim(t *testing.T) {
	e := setup(t)
	id := "killshim"
	b := e.bundle(t, id, []string{"sleep", "60"})
	c := e.start(t, id, b, nil)
	ctx := context.Background()
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the shim to die", func() bool { return !c.Alive() })
	if _, err := c.State(ctx, &shimapi.StateRequest{Id: id}); !errdefs.IsUnavailable(err) {
		t.Errorf("state on a dead shim: got %v, want Unavailable", err)
	}
	if _, err := client.Connect(ctx, b); !errdefs.IsUnavailable(err) {
		t.Errorf("connect to a dead shim: got %v, want Unavailable", err)
	}
	// The container outlived its shim: no exit was recorded.
	if _, err := client.ReadExit(b); !errdefs.IsNotFound(err) {
		t.Errorf("ReadExit: got %v, want NotFound", err)
	}
}

func TestShim_LongBundlePath(t *testing.T) {
	e := setup(t)
	id := "long"
	b := e.bundle(t, id, []string{"true"})
	long := filepath.Join(b, strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(b, "config.json"), filepath.Join(long, "config.json")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cleanup(id, long) })
	c := e.start(t, id, long, nil)
	if w := run(t, c, id); w.ExitStatus != 0 {
		t.Errorf("exit: got %d", w.ExitStatus)
	}
}

func TestShim_LogRotation(t *testing.T) {
	e := setup(t)
	id := "rotate"
	b := e.bundle(t, id, []string{"sh", "-c", `i=0; while [ $i -lt 1000 ]; do echo "line $i"; i=$((i+1)); done`})
	logPath := filepath.Join(t.TempDir(), "container.log")
	c := e.start(t, id, b, &shimapi.CreateRequest{Log: &shimapi.Log{Path: logPath, MaxSize: 4096, MaxFiles: 3}})
	if w := run(t, c, id); w.ExitStatus != 0 {
		t.Fatalf("exit: got %d", w.ExitStatus)
	}
	files := logs.Files(logPath)
	if len(files) != 3 {
		t.Errorf("log files: got %v, want 3", files)
	}
	for _, f := range files {
		if st, err := os.Stat(f); err != nil || st.Size() > 4096 {
			t.Errorf("%s: %v, want <= 4096 bytes", f, st.Size())
		}
	}
	var got []string
	err := logs.Read(context.Background(), logPath, logs.ReadOptions{Tail: 2}, func(e logs.Entry) error {
		got = append(got, e.Stream+" "+string(e.Text))
		return nil
	})
	if err != nil || len(got) != 2 || got[0] != "stdout line 998" || got[1] != "stdout line 999" {
		t.Errorf("tail 2: got %q %v", got, err)
	}
}

// TestShim_CreateStarted: Create with start runs the container in one
// runtime call (runc run --detach). A process that exits at once, before
// the shim can look at it, still has its exit recorded and reported once;
// Start of it is refused as of any started process; an OOM kill of a
// started container is still seen (its cgroup is found from config.json
// when the process is gone).
func TestShim_CreateStarted(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		args []string
		opts []specOpt
		want uint32
		oom  bool
	}{
		{"exit3", []string{"sh", "-c", "exit 3"}, nil, 3, false},
		{"oom", []string{"sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"}, []specOpt{memoryLimit(8 << 20)}, 137, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "started-" + tc.name
			b := e.bundle(t, id, tc.args, tc.opts...)
			c := e.start(t, id, b, &shimapi.CreateRequest{Start: true})
			if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); !errdefs.IsFailedPrecondition(err) {
				t.Errorf("Start after a started Create: %v, want failed precondition", err)
			}
			w, err := c.Wait(ctx, &shimapi.WaitRequest{Id: id})
			if err != nil || w.ExitStatus != tc.want || w.OomKilled != tc.oom {
				t.Fatalf("wait: %v %v, want exit %d oom %v", w, err, tc.want, tc.oom)
			}
			if rec, err := client.ReadExit(b); err != nil || rec.ExitStatus != tc.want || rec.OOMKilled != tc.oom {
				t.Errorf("exit.json: %+v %v, want status %d oom %v", rec, err, tc.want, tc.oom)
			}
			if d, err := c.Delete(ctx, &shimapi.DeleteRequest{Id: id}); err != nil || d.ExitStatus != tc.want {
				t.Fatalf("delete: %v %v, want exit %d", d, err, tc.want)
			}
		})
	}
}
