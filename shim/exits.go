package shim

import (
	"berth.dev/berth/shim/bundle"
	"sync"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
)

// exitQueue hands exits from the reaper to one goroutine that may wait for
// the service's lock, so reaping never stops while a method runs runc.
type exitQueue struct {
	mu     sync.Mutex
	q      []timedExit
	wake   chan struct{}
	handle func(pid, status int, at time.Time)
	// inFlight counts, by pid, the exits pushed and not yet handled: a
	// pid reaped whose exit is not recorded (signalProcess).
	inFlight map[int]int
}

type timedExit struct {
	reaped
	at time.Time
}

func (e *exitQueue) init(handle func(pid, status int, at time.Time)) {
	e.wake, e.handle = make(chan struct{}, 1), handle
	go e.run()
}

func (e *exitQueue) push(pid, status int, at time.Time) {
	e.mu.Lock()
	e.q = append(e.q, timedExit{reaped{pid, status}, at})
	if e.inFlight == nil {
		e.inFlight = map[int]int{}
	}
	e.inFlight[pid]++
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *exitQueue) run() {
	for range e.wake {
		e.mu.Lock()
		q := e.q
		e.q = nil
		e.mu.Unlock()
		for _, x := range q {
			e.handle(x.pid, x.status, x.at)
			e.mu.Lock()
			if e.inFlight[x.pid]--; e.inFlight[x.pid] <= 0 {
				delete(e.inFlight, x.pid)
			}
			e.mu.Unlock()
		}
	}
}

// queued reports whether an exit of pid was pushed and is not handled yet.
func (e *exitQueue) queued(pid int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.inFlight[pid] > 0
}

// maxPending bounds the exits kept for pids the shim does not know yet
// (an exec that exited before runc returned its pid; the container's
// orphans, which are never claimed).
const maxPending = 128

// drainWait bounds how long an exit waits for the process's output to be
// copied: a daemon the process left behind may hold its stdout open.
const drainWait = 2 * time.Second

// handleExit records an exit for the process it belongs to.
func (s *Service) handleExit(pid, status int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.byPid(pid)
	if p == nil {
		if len(s.pending) >= maxPending {
			for k := range s.pending {
				delete(s.pending, k)
				break
			}
		}
		s.pending[pid] = reaped{pid, status}
		return
	}
	s.recordExit(p, status, at)
}

func (s *Service) byPid(pid int) *process {
	if s.init != nil && s.init.pid == pid && s.init.status != shimapi.Status_STOPPED {
		return s.init
	}
	for _, p := range s.execs {
		if p.pid == pid && p.status != shimapi.Status_STOPPED {
			return p
		}
	}
	return nil
}

// claimPending records an exit that arrived before p's pid was known.
// mu held.
func (s *Service) claimPending(p *process) {
	if e, ok := s.pending[p.pid]; ok {
		delete(s.pending, p.pid)
		s.recordExit(p, e.status, time.Now())
	}
}

// recordExit marks p stopped; for the init process it first writes the
// exit record to disk, so whoever learns of the exit can find it again
// after both shim and berthd die. mu held.
func (s *Service) recordExit(p *process, status int, at time.Time) {
	p.status, p.exitStatus, p.exitedAt = shimapi.Status_STOPPED, status, at
	if p == s.init {
		p.oom = s.cg != nil && s.cg.oomKills() > s.oomBase
		err := bundle.WriteExit(s.bundle, bundle.Exit{Pid: uint32(p.pid), ExitStatus: uint32(status), ExitedAt: at, OOMKilled: p.oom})
		if err != nil {
			s.log.Error("exit record not written", "err", err)
		}
		s.log.Info("exited", "id", s.id, "pid", p.pid, "status", status, "oom", p.oom)
	}
	pio := p.io
	go func() {
		if pio != nil {
			pio.wait(drainWait)
		}
		close(p.exited)
	}()
}
