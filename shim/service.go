package shim

import (
	"berth.dev/berth/shim/bundle"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/shim/logs"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Service is the shim's Task service for the one container in its bundle.
//
// All state is under mu, which may be held across a runtime call. Exits
// reach it through a queue (see exits.go) so the reaper never waits on mu:
// it must keep reaping the very runc command a locked method waits for.
type Service struct {
	log       *slog.Logger
	namespace string
	bundle    string
	runtime   string // default runtime binary

	mu       sync.Mutex
	id       string
	rt       *runc
	init     *process
	deleted  bool
	execs    map[string]*process
	pending  map[int]reaped // exits of pids not (yet) known as ours
	cg       *cgroup
	oomBase  uint64
	logw     *logs.Writer
	draining bool // Shutdown asked: exit once no task remains
	// spare: started ahead of any container in a directory of its own,
	// which berthd renames to the container's bundle before Create; the
	// first Create names that bundle, and the shim serves it from then on.
	spare bool
	// ownPIDNS: the container has a PID namespace of its own, so its
	// init's death is every process's and a kill of init needs no runc.
	ownPIDNS bool

	exitq    exitQueue
	done     chan struct{}
	doneOnce sync.Once
}

var _ shimapi.TaskService = (*Service)(nil)

// DefaultRuntimeRoot is runc's --root under which a namespace's containers
// live when Create names none.
const DefaultRuntimeRoot = "/run/berth/runc"

// NewService serves the container of bundle. It starts the reaper, so a
// process has one Service.
func NewService(log *slog.Logger, namespace, dir, runtime string) *Service {
	s := &Service{
		log: log, namespace: namespace, bundle: dir, runtime: runtime,
		execs: map[string]*process{}, pending: map[int]reaped{}, done: make(chan struct{}),
	}
	s.exitq.init(s.handleExit)
	s.rt = &runc{reaper: newReaper(s.exitq.push), logPath: filepath.Join(dir, bundle.RuncLog)}
	return s
}

// Done is closed when the shim should exit.
func (s *Service) Done() <-chan struct{} { return s.done }

func (s *Service) finish() { s.doneOnce.Do(func() { close(s.done) }) }

// proc returns the process execID names; mu held.
func (s *Service) proc(id, execID string) (*process, error) {
	if s.init == nil || s.deleted {
		return nil, fmt.Errorf("task %q: %w", id, errdefs.ErrNotFound)
	}
	if id != "" && id != s.id {
		return nil, fmt.Errorf("task %q: this shim serves %q: %w", id, s.id, errdefs.ErrNotFound)
	}
	if execID == "" {
		return s.init, nil
	}
	p, ok := s.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %q of %s: %w", execID, s.id, errdefs.ErrNotFound)
	}
	return p, nil
}

func (s *Service) Create(ctx context.Context, req *shimapi.CreateRequest) (*shimapi.CreateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.init != nil {
		return nil, fmt.Errorf("task %s: %w", s.id, errdefs.ErrAlreadyExists)
	}
	if req.Id == "" {
		return nil, fmt.Errorf("create: no id: %w", errdefs.ErrInvalidArgument)
	}
	if req.Bundle != "" && filepath.Clean(req.Bundle) != s.bundle {
		if !s.spare || !isWorkingDir(req.Bundle) {
			return nil, fmt.Errorf("create %s: bundle %s is not this shim's %s: %w", req.Id, req.Bundle, s.bundle, errdefs.ErrInvalidArgument)
		}
		// A spare whose directory was renamed to this bundle.
		s.bundle = filepath.Clean(req.Bundle)
		s.rt.logPath = filepath.Join(s.bundle, bundle.RuncLog)
		// berthd's bundles are <state>/<namespace>/<id>.
		s.namespace = filepath.Base(filepath.Dir(s.bundle))
		s.log = s.log.With("ns", s.namespace, "id", req.Id, "bundle", s.bundle)
	}
	s.spare = false
	bin := firstOf(req.Runtime, s.runtime, "runc")
	bin, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("create %s: runtime: %w", req.Id, errdefs.ErrNotFound)
	}
	root := firstOf(req.RuntimeRoot, filepath.Join(DefaultRuntimeRoot, s.namespace))
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: runtime root: %w", req.Id, err)
	}
	s.rt.bin, s.rt.root = bin, root
	if err := os.Remove(filepath.Join(s.bundle, bundle.ExitName)); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("create %s: stale exit record: %w", req.Id, err)
	}
	l := req.GetLog()
	s.logw, err = logs.NewWriter(firstOf(l.GetPath(), filepath.Join(s.bundle, "output.log")), l.GetMaxSize(), int(l.GetMaxFiles()))
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", req.Id, err)
	}
	p := newProcess("", req.Stdio)
	// A started process may be OOM-killed before the shim looks: the
	// count of OOM kills its cgroup already had (one a crash left behind,
	// which runc would reuse) is read before it runs.
	var oomBefore uint64
	if req.Start {
		if cg, err := cgroupOfSpec(s.bundle); err == nil {
			oomBefore = cg.oomKills()
		}
	}
	tStart := time.Now()
	var tRuntime time.Duration
	pid, err := s.startProcess(p, s.logw, func(fds stdioFiles, console string) (int, error) {
		t := time.Now()
		defer func() { tRuntime = time.Since(t) }()
		if req.Start {
			return s.rt.runDetached(req.Id, s.bundle, filepath.Join(s.bundle, "init.pid"), console, fds)
		}
		return s.rt.create(req.Id, s.bundle, filepath.Join(s.bundle, "init.pid"), console, fds)
	})
	if err != nil {
		s.logw.Close()
		return nil, fmt.Errorf("create %s: %w", req.Id, err)
	}
	s.id, s.init = req.Id, p
	s.ownPIDNS = ownPIDNamespace(s.bundle)
	// The spec's cgroup path first: a started process may have exited
	// already, and an exited process's /proc/PID/cgroup names the root
	// cgroup (the kernel moves a task out at exit), while the container's
	// cgroup stays until the runtime deletes it.
	if s.cg, err = cgroupOfSpec(s.bundle); err != nil {
		s.cg, err = cgroupOf(pid)
	}
	if err != nil {
		s.log.Warn("no cgroup: stats and oom detection off", "err", err)
	}
	// A created process has run nothing yet, so the cgroup's count of
	// OOM kills so far is not its own.
	s.oomBase = s.cg.oomKills()
	if req.Start {
		s.oomBase = oomBefore
		p.status = shimapi.Status_RUNNING
	}
	s.claimPending(p)
	s.log.Info("created", "id", req.Id, "pid", pid, "started", req.Start, "runtime", tRuntime, "total", time.Since(tStart))
	if req.Start {
		s.trimLater()
	}
	return &shimapi.CreateResponse{Pid: uint32(pid)}, nil
}

// startProcess sets up p's stdio, runs create (runc create or exec) and
// attaches the terminal if there is one. mu held.
func (s *Service) startProcess(p *process, log *logs.Writer, create func(stdioFiles, string) (int, error)) (int, error) {
	var pio *procIO
	var cs *consoleSocket
	var err error
	if p.stdio.GetTerminal() {
		pio = &procIO{log: log, stdio: p.stdio}
		if cs, err = newConsoleSocket(); err != nil {
			return 0, err
		}
		defer cs.close()
	} else if pio, err = newPipeIO(p.stdio, log); err != nil {
		return 0, err
	}
	consolePath := ""
	if cs != nil {
		consolePath = cs.path()
	}
	pid, err := create(pio.child, consolePath)
	pio.closeChild()
	if err != nil {
		pio.close()
		return 0, err
	}
	if cs != nil {
		master, err := cs.receive(10 * time.Second)
		if err == nil {
			err = pio.attachConsole(master)
		}
		if err != nil {
			pio.close()
			return 0, err
		}
	}
	p.pid, p.io = pid, pio
	return pid, nil
}

func (s *Service) Start(ctx context.Context, req *shimapi.StartRequest) (*shimapi.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.proc(req.Id, req.ExecId)
	if err != nil {
		return nil, err
	}
	if p.status != shimapi.Status_CREATED {
		return nil, fmt.Errorf("start %s/%s: status %s: %w", s.id, req.ExecId, p.status, errdefs.ErrFailedPrecondition)
	}
	if p == s.init {
		if err := s.rt.start(s.id); err != nil {
			return nil, fmt.Errorf("start %s: %w", s.id, err)
		}
		p.status = shimapi.Status_RUNNING
		s.trimLater()
		return &shimapi.StartResponse{Pid: uint32(p.pid)}, nil
	}
	specPath := filepath.Join(s.bundle, "exec-"+p.execID+".json")
	if err := os.WriteFile(specPath, p.spec, 0o600); err != nil {
		return nil, fmt.Errorf("exec %s: %w", p.execID, err)
	}
	defer os.Remove(specPath)
	pidFile := filepath.Join(s.bundle, "exec-"+p.execID+".pid")
	defer os.Remove(pidFile)
	pid, err := s.startProcess(p, nil, func(fds stdioFiles, console string) (int, error) {
		return s.rt.exec(s.id, specPath, pidFile, console, fds)
	})
	if err != nil {
		return nil, fmt.Errorf("exec %s in %s: %w", p.execID, s.id, err)
	}
	p.status = shimapi.Status_RUNNING
	s.claimPending(p)
	return &shimapi.StartResponse{Pid: uint32(pid)}, nil
}

func (s *Service) State(ctx context.Context, req *shimapi.StateRequest) (*shimapi.StateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.proc(req.Id, req.ExecId)
	if err != nil {
		return nil, err
	}
	return p.state(s.id, s.bundle), nil
}

func (s *Service) Wait(ctx context.Context, req *shimapi.WaitRequest) (*shimapi.WaitResponse, error) {
	s.mu.Lock()
	p, err := s.proc(req.Id, req.ExecId)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		// Shut down with the process running: its waiters learn that the
		// shim goes, rather than keep the shim's exit waiting for them.
		return nil, fmt.Errorf("wait %s/%s: the shim exits: %w", s.id, req.ExecId, errdefs.ErrUnavailable)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &shimapi.WaitResponse{ExitStatus: uint32(p.exitStatus), ExitedAt: timestamppb.New(p.exitedAt), OomKilled: p.oom}, nil
}

func (s *Service) Connect(ctx context.Context, req *shimapi.ConnectRequest) (*shimapi.ConnectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &shimapi.ConnectResponse{ShimPid: uint32(os.Getpid())}
	if s.init != nil && !s.deleted {
		r.TaskPid = uint32(s.init.pid)
	}
	return r, nil
}

func (s *Service) Shutdown(ctx context.Context, req *shimapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Now || s.init == nil || s.deleted {
		s.finish()
	} else {
		s.draining = true
	}
	return &emptypb.Empty{}, nil
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// isWorkingDir reports whether dir is the shim's working directory (its
// bundle, which a rename may have moved).
func isWorkingDir(dir string) bool {
	a, err := os.Stat(dir)
	if err != nil {
		return false
	}
	b, err := os.Stat(".")
	return err == nil && os.SameFile(a, b)
}
