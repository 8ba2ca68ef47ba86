package shim

import (
	shimbundle "berth.dev/berth/shim/bundle"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/shim/logs"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// bareService is a Service with no reaper and no runtime, for the logic
// that decides what an exit belongs to.
func bareService(t *testing.T) *Service {
	return &Service{log: quietLog(), bundle: t.TempDir(), id: "c1", execs: map[string]*process{}, pending: map[int]reaped{}, done: make(chan struct{})}
}

func TestHandleExit_InitWritesRecordFirst(t *testing.T) {
	t.Parallel()
	s := bareService(t)
	s.init = newProcess("", nil)
	s.init.pid, s.init.status = 42, shimapi.Status_RUNNING
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.handleExit(42, 137, at)
	// The record is on disk when the exit is recorded, before any waiter
	// learns of it: a berthd that dies now finds it after a restart.
	e, err := shimbundle.ReadExit(s.bundle)
	if err != nil {
		t.Fatalf("shimbundle.ReadExit: %v", err)
	}
	if e.Pid != 42 || e.ExitStatus != 137 || !e.ExitedAt.Equal(at) || e.OOMKilled {
		t.Errorf("exit record = %+v, want pid 42 status 137 at %v, not oom", e, at)
	}
	select {
	case <-s.init.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("waiters not released after the exit")
	}
	st := s.init.state("c1", s.bundle)
	if st.Status != shimapi.Status_STOPPED || st.ExitStatus != 137 || !st.ExitedAt.AsTime().Equal(at) {
		t.Errorf("state after exit = %v", st)
	}
	// A second exit of the same pid (reused by the kernel) is not ours.
	s.handleExit(42, 0, at.Add(time.Second))
	if e, _ := shimbundle.ReadExit(s.bundle); e.ExitStatus != 137 {
		t.Errorf("a later exit of a reused pid rewrote the record: %+v", e)
	}
}

func TestHandleExit_ExecBeforeItsPidIsKnown(t *testing.T) {
	t.Parallel()
	s := bareService(t)
	s.init = newProcess("", nil)
	s.init.pid, s.init.status = 10, shimapi.Status_RUNNING
	// runc exec's process exits before runc has returned its pid.
	s.handleExit(11, 3, time.Now())
	if _, ok := s.pending[11]; !ok {
		t.Fatalf("exit of an unknown pid not kept: pending %v", s.pending)
	}
	p := newProcess("e1", nil)
	p.pid, p.status = 11, shimapi.Status_RUNNING
	s.execs["e1"] = p
	s.claimPending(p)
	if p.status != shimapi.Status_STOPPED || p.exitStatus != 3 || len(s.pending) != 0 {
		t.Errorf("after claim: status %v exit %d pending %v; want STOPPED 3 and none pending", p.status, p.exitStatus, s.pending)
	}
	if _, err := shimbundle.ReadExit(s.bundle); !errdefs.IsNotFound(err) {
		t.Errorf("an exec's exit wrote the init exit record: %v", err)
	}
	// Orphans of the container are never claimed: what is kept stays bounded.
	for pid := 1000; pid < 1000+3*maxPending; pid++ {
		s.handleExit(pid, 0, time.Now())
	}
	if len(s.pending) > maxPending {
		t.Errorf("%d pending exits kept, want at most %d", len(s.pending), maxPending)
	}
}

func TestValidExecID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{"exec-1": true, "a.b_C": true, "": true, ".": false, "..": false, "a/b": false, "sp ace": false, "é": false} {
		if got := validExecID(id); got != want {
			t.Errorf("validExecID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestPipeIO_LogAndAttachedClient: a process's output reaches both its log
// and an attached client's FIFO; a client that stops reading is dropped
// after fifoWait and the log keeps everything.
func TestPipeIO_LogAndAttachedClient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "stdout")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := os.OpenFile(fifo, os.O_RDWR, 0) // holds the FIFO open without reading
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	lw, err := logs.NewWriter(filepath.Join(dir, "out.log"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	p, err := newPipeIO(&shimapi.Stdio{Stdout: fifo}, lw)
	if err != nil {
		t.Fatal(err)
	}
	if p.child.out == nil || p.child.err == nil || p.child.in != nil {
		t.Fatalf("child ends: %+v; want stdout and stderr pipes, no stdin", p.child)
	}
	out, errw := p.child.out, p.child.err
	fmt.Fprintln(out, "first line")
	buf := make([]byte, 64)
	n, err := client.Read(buf)
	if err != nil || string(buf[:n]) != "first line\n" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	// More than a pipe buffer that nobody reads: the shim must not stall.
	big := bytes.Repeat([]byte("x"), 1<<20)
	start := time.Now()
	out.Write(append(big, '\n'))
	fmt.Fprintln(errw, "to stderr")
	p.closeChild()
	p.wait(10 * time.Second)
	if el := time.Since(start); el > fifoWait+5*time.Second {
		t.Errorf("output took %v with a stalled client, want about fifoWait (%v)", el, fifoWait)
	}
	var entries []logs.Entry
	if err := logs.Read(context.Background(), filepath.Join(dir, "out.log"), logs.ReadOptions{Tail: -1}, func(e logs.Entry) error {
		e.Text = bytes.Clone(e.Text) // valid only during the callback
		entries = append(entries, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	streams := map[string]bool{}
	for _, e := range entries {
		all.Write(e.Text)
		streams[e.Stream] = true
	}
	if got := all.String(); !strings.Contains(got, "first line") || !strings.Contains(got, "to stderr") || strings.Count(got, "x") != len(big) {
		t.Errorf("log holds %d bytes (%d x), want both lines and the whole %d-byte line", len(got), strings.Count(got, "x"), len(big))
	}
	if !streams[logs.Stdout] || !streams[logs.Stderr] {
		t.Errorf("log streams %v, want stdout and stderr", streams)
	}
}

// TestService_Lifecycle drives the Service in this process with real runc
// through what berthd asks of a shim: create, start, exec, kill, wait,
// delete, and the refusals in between. The test process is the container's
// subreaper, as the shim is; it holds the package's one Service (a process
// has one reaper).
func TestService_Lifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	runcBin := testutil.RequireBinary(t, "runc")
	images := testutil.TestImages(t, "busybox")
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bundle, rootfs := t.TempDir(), t.TempDir()
	if err := testutil.ExtractSingleLayer(filepath.Join(images, "busybox"), rootfs); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("shim-unit-%d", os.Getpid())
	writeSpec(t, bundle, rootfs, id, []string{"sh", "-c", "echo started; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done"})
	runcRoot := filepath.Join(t.TempDir(), "runc")
	t.Cleanup(func() { _ = exec.Command(runcBin, "--root", runcRoot, "delete", "--force", id).Run() })

	s := NewService(quietLog(), "test", bundle, "")
	// It reaps every child of the test process, the runc delete above too.
	t.Cleanup(s.rt.reaper.stop)
	if _, err := s.State(ctx, &shimapi.StateRequest{Id: id}); !errdefs.IsNotFound(err) {
		t.Errorf("State before Create: %v, want not found", err)
	}
	if _, err := s.Create(ctx, &shimapi.CreateRequest{Id: id, Bundle: "/elsewhere"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create with another bundle: %v, want invalid argument", err)
	}
	if _, err := s.Create(ctx, &shimapi.CreateRequest{Id: id, Runtime: "no-such-runtime"}); !errdefs.IsNotFound(err) {
		t.Errorf("Create with a missing runtime: %v, want not found", err)
	}
	created, err := s.Create(ctx, &shimapi.CreateRequest{Id: id, Bundle: bundle, RuntimeRoot: runcRoot,
		Log: &shimapi.Log{MaxSize: 1 << 20, MaxFiles: 2}})
	if err != nil {
		t.Fatalf("Create: %v\nrunc.log: %s", err, readFile(filepath.Join(bundle, shimbundle.RuncLog)))
	}
	if _, err := s.Create(ctx, &shimapi.CreateRequest{Id: id}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second Create: %v, want already exists", err)
	}
	if st, err := s.State(ctx, &shimapi.StateRequest{Id: id}); err != nil || st.Status != shimapi.Status_CREATED || st.Pid != created.Pid {
		t.Errorf("State after Create: %v %v, want CREATED pid %d", st, err, created.Pid)
	}
	if _, err := s.Exec(ctx, &shimapi.ExecRequest{Id: id, ExecId: "early"}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Exec before Start: %v, want failed precondition", err)
	}
	if _, err := s.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := s.Start(ctx, &shimapi.StartRequest{Id: id}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("second Start: %v, want failed precondition", err)
	}
	if _, err := s.State(ctx, &shimapi.StateRequest{Id: "other"}); !errdefs.IsNotFound(err) {
		t.Errorf("State of another id: %v, want not found", err)
	}

	// An exec runs beside init and its exit is its own.
	proc, _ := json.Marshal(specs.Process{Args: []string{"sh", "-c", "exit 4"}, Cwd: "/", Env: []string{"PATH=/bin:/usr/bin"}})
	if _, err := s.Exec(ctx, &shimapi.ExecRequest{Id: id, ExecId: "bad/id", Spec: proc}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Exec with a path in its id: %v, want invalid argument", err)
	}
	if _, err := s.Exec(ctx, &shimapi.ExecRequest{Id: id, ExecId: "e1", Spec: proc}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if _, err := s.Start(ctx, &shimapi.StartRequest{Id: id, ExecId: "e1"}); err != nil {
		t.Fatalf("Start exec: %v\nrunc.log: %s", err, readFile(filepath.Join(bundle, shimbundle.RuncLog)))
	}
	if w, err := s.Wait(ctx, &shimapi.WaitRequest{Id: id, ExecId: "e1"}); err != nil || w.ExitStatus != 4 {
		t.Errorf("Wait exec: %v %v, want exit 4", w, err)
	}
	if _, err := s.Delete(ctx, &shimapi.DeleteRequest{Id: id, ExecId: "e1"}); err != nil {
		t.Errorf("Delete exec: %v", err)
	}
	if _, err := shimbundle.ReadExit(bundle); !errdefs.IsNotFound(err) {
		t.Errorf("exit record while init runs: %v", err)
	}
	if _, err := s.Delete(ctx, &shimapi.DeleteRequest{Id: id}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Delete of a running task: %v, want failed precondition", err)
	}

	if _, err := s.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: uint32(unix.SIGTERM)}); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	w, err := s.Wait(ctx, &shimapi.WaitRequest{Id: id})
	if err != nil || w.ExitStatus != 7 {
		t.Fatalf("Wait: %v %v, want exit 7 (the TERM trap)", w, err)
	}
	e, err := shimbundle.ReadExit(bundle)
	if err != nil || e.ExitStatus != 7 || e.Pid != created.Pid || !e.ExitedAt.Equal(w.ExitedAt.AsTime()) {
		t.Errorf("exit record: %+v %v, want pid %d status 7 at %v", e, err, created.Pid, w.ExitedAt.AsTime())
	}
	if _, err := s.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: uint32(unix.SIGKILL)}); !errdefs.IsNotFound(err) {
		t.Errorf("Kill after exit: %v, want not found", err)
	}
	d, err := s.Delete(ctx, &shimapi.DeleteRequest{Id: id})
	if err != nil || d.ExitStatus != 7 {
		t.Fatalf("Delete: %v %v, want exit 7", d, err)
	}
	// Through the Service's reaper, which would otherwise take the exit
	// from cmd.Wait.
	var out bytes.Buffer
	state := exec.Command(runcBin, "--root", runcRoot, "state", id)
	state.Stdout, state.Stderr = &out, &out
	if ch, err := s.rt.reaper.start(state); err != nil {
		t.Error(err)
	} else if st, err := s.rt.reaper.wait(state, ch, 30*time.Second); err != nil || st == 0 {
		t.Errorf("runc state after Delete: exit %d, %v: %s; want it not to know %s", st, err, out.String(), id)
	}
	// What the container printed is in its log, stream by stream.
	var lines []string
	_ = logs.Read(ctx, filepath.Join(bundle, "output.log"), logs.ReadOptions{Tail: -1}, func(e logs.Entry) error {
		lines = append(lines, e.Stream+":"+strings.TrimSpace(string(e.Text)))
		return nil
	})
	if strings.Join(lines, ",") != "stdout:started,stdout:bye" {
		t.Errorf("output.log = %v, want stdout:started, stdout:bye", lines)
	}
	if _, err := s.Shutdown(ctx, &shimapi.ShutdownRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after Shutdown of a deleted task")
	}
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

func writeSpec(t *testing.T, bundle, rootfs, id string, args []string) {
	t.Helper()
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin"}, NoNewPrivileges: true},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755", "size=1m"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/berth-shim-unit/" + id,
			Namespaces:  []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}},
		},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
