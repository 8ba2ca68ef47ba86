package shim

import (
	"context"
	"errors"
	"fmt"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var empty = &emptypb.Empty{}

func (s *Service) Kill(ctx context.Context, req *shimapi.KillRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.proc(req.Id, req.ExecId)
	if err != nil {
		return nil, err
	}
	if p.status == shimapi.Status_STOPPED && !req.All {
		return nil, fmt.Errorf("kill %s/%s: process already finished: %w", s.id, req.ExecId, errdefs.ErrNotFound)
	}
	if p != s.init {
		if err := s.signalProcess(p, unix.Signal(req.Signal)); err != nil {
			return nil, fmt.Errorf("kill exec %s: %w", req.ExecId, err)
		}
		return empty, nil
	}
	// The shim is init's parent: until it reaps init the pid is init's,
	// so a signal to it needs no runc kill (a runtime process less on
	// every stop). With a PID namespace of its own, killing init is
	// killing all.
	if s.ownPIDNS && p.pid > 0 && (!req.All || req.Signal == uint32(unix.SIGKILL)) {
		if p.status == shimapi.Status_STOPPED {
			return empty, nil
		}
		if err := s.signalProcess(p, unix.Signal(req.Signal)); err != nil && !errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("kill %s: %w", s.id, err)
		}
		return empty, nil
	}
	if err := s.rt.kill(s.id, int(req.Signal), req.All); err != nil {
		return nil, fmt.Errorf("kill %s: %w", s.id, err)
	}
	return empty, nil
}

// signalProcess sends sig to p's pid unless the reaper has collected it
// and its exit is not recorded yet: the pid is free then (p still reads
// running, its record waiting for mu), and may be another process's. The
// reaper's lock keeps a wait4 from freeing the pid meanwhile. mu held.
func (s *Service) signalProcess(p *process, sig unix.Signal) error {
	r := s.rt.reaper
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.exitq.queued(p.pid) {
		return unix.ESRCH
	}
	return unix.Kill(p.pid, sig)
}

func (s *Service) Pause(ctx context.Context, req *shimapi.PauseRequest) (*emptypb.Empty, error) {
	return s.setPaused(req.Id, true)
}

func (s *Service) Resume(ctx context.Context, req *shimapi.ResumeRequest) (*emptypb.Empty, error) {
	return s.setPaused(req.Id, false)
}

func (s *Service) setPaused(id string, pause bool) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.proc(id, "")
	if err != nil {
		return nil, err
	}
	from, to, do := shimapi.Status_RUNNING, shimapi.Status_PAUSED, s.rt.pause
	if !pause {
		from, to, do = shimapi.Status_PAUSED, shimapi.Status_RUNNING, s.rt.resume
	}
	if p.status != from {
		return nil, fmt.Errorf("%s is %s, not %s: %w", s.id, p.status, from, errdefs.ErrFailedPrecondition)
	}
	if err := do(s.id); err != nil {
		return nil, err
	}
	p.status = to
	return empty, nil
}

func (s *Service) Exec(ctx context.Context, req *shimapi.ExecRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.proc(req.Id, ""); err != nil {
		return nil, err
	}
	if req.ExecId == "" || len(req.ExecId) > 64 || !validExecID(req.ExecId) {
		return nil, fmt.Errorf("exec id %q: %w", req.ExecId, errdefs.ErrInvalidArgument)
	}
	if _, ok := s.execs[req.ExecId]; ok {
		return nil, fmt.Errorf("exec %s: %w", req.ExecId, errdefs.ErrAlreadyExists)
	}
	if !s.init.running() {
		return nil, fmt.Errorf("exec in %s: task is %s: %w", s.id, s.init.status, errdefs.ErrFailedPrecondition)
	}
	p := newProcess(req.ExecId, req.Stdio)
	p.spec = req.Spec
	s.execs[req.ExecId] = p
	return empty, nil
}

// validExecID keeps exec ids usable in file names.
func validExecID(id string) bool {
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return id != "." && id != ".."
}

func (s *Service) Delete(ctx context.Context, req *shimapi.DeleteRequest) (*shimapi.DeleteResponse, error) {
	s.mu.Lock()
	p, err := s.proc(req.Id, req.ExecId)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if p.running() {
		s.mu.Unlock()
		return nil, fmt.Errorf("delete %s/%s: still %s: %w", s.id, req.ExecId, p.status, errdefs.ErrFailedPrecondition)
	}
	if p != s.init {
		delete(s.execs, req.ExecId)
		s.mu.Unlock()
		if p.io != nil {
			p.io.close()
		}
		return deleteResponse(p), nil
	}
	// A created, never started, init is killed by runc delete --force.
	force := p.status == shimapi.Status_CREATED
	if err := s.rt.delete(s.id, force); err != nil && !errdefs.IsNotFound(err) {
		s.mu.Unlock()
		return nil, fmt.Errorf("delete %s: %w", s.id, err)
	}
	s.mu.Unlock()
	if force {
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = true
	if p.io != nil {
		p.io.close()
	}
	s.logw.Close()
	if s.draining {
		s.finish()
	}
	return deleteResponse(p), nil
}

func deleteResponse(p *process) *shimapi.DeleteResponse {
	r := &shimapi.DeleteResponse{Pid: uint32(p.pid), ExitStatus: uint32(p.exitStatus)}
	if !p.exitedAt.IsZero() {
		r.ExitedAt = timestamppb.New(p.exitedAt)
	}
	return r
}

func (s *Service) Pids(ctx context.Context, req *shimapi.PidsRequest) (*shimapi.PidsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.proc(req.Id, ""); err != nil {
		return nil, err
	}
	pids, err := s.rt.ps(s.id)
	if err != nil {
		return nil, fmt.Errorf("pids of %s: %w", s.id, err)
	}
	r := &shimapi.PidsResponse{}
	for _, pid := range pids {
		info := &shimapi.ProcessInfo{Pid: uint32(pid)}
		for id, p := range s.execs {
			if p.pid == pid {
				info.ExecId = id
			}
		}
		r.Processes = append(r.Processes, info)
	}
	return r, nil
}

func (s *Service) Stats(ctx context.Context, req *shimapi.StatsRequest) (*shimapi.StatsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.proc(req.Id, ""); err != nil {
		return nil, err
	}
	if s.cg == nil {
		return nil, fmt.Errorf("stats of %s: cgroup unknown: %w", s.id, errdefs.ErrUnavailable)
	}
	st := s.cg.stats()
	return &shimapi.StatsResponse{
		CpuUsageNs: st.cpuNs, MemoryUsage: st.memUsage, MemoryLimit: st.memLimit, MemoryMaxUsage: st.memMax,
		OomKillCount: st.oomKills, PidsCurrent: st.pids, PidsLimit: st.pidsLimit,
	}, nil
}

func (s *Service) CloseIO(ctx context.Context, req *shimapi.CloseIORequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.proc(req.Id, req.ExecId)
	if err != nil {
		return nil, err
	}
	if req.Stdin && p.io != nil {
		p.io.closeStdin()
	}
	return empty, nil
}

func (s *Service) ResizePty(ctx context.Context, req *shimapi.ResizePtyRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.proc(req.Id, req.ExecId)
	if err != nil {
		return nil, err
	}
	if p.io == nil || p.io.console == nil {
		return nil, fmt.Errorf("resize %s/%s: no terminal: %w", s.id, req.ExecId, errdefs.ErrFailedPrecondition)
	}
	if err := p.io.resize(req.Width, req.Height); err != nil {
		return nil, fmt.Errorf("resize %s/%s: %w", s.id, req.ExecId, err)
	}
	return empty, nil
}
