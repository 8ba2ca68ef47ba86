package shim

import (
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// process is the init process or one exec process of the container.
type process struct {
	execID     string // "" for init
	pid        int
	status     shimapi.Status
	exitStatus int
	exitedAt   time.Time
	oom        bool
	exited     chan struct{} // closed once the exit is recorded and output drained
	io         *procIO
	stdio      *shimapi.Stdio
	spec       []byte // exec: the OCI process as JSON
}

func newProcess(execID string, stdio *shimapi.Stdio) *process {
	if stdio == nil {
		stdio = &shimapi.Stdio{}
	}
	return &process{execID: execID, status: shimapi.Status_CREATED, exited: make(chan struct{}), stdio: stdio}
}

func (p *process) state(id, bundle string) *shimapi.StateResponse {
	r := &shimapi.StateResponse{
		Id: id, ExecId: p.execID, Bundle: bundle, Pid: uint32(p.pid), Status: p.status,
		Terminal: p.stdio.GetTerminal(),
	}
	if p.status == shimapi.Status_STOPPED {
		r.ExitStatus, r.ExitedAt, r.OomKilled = uint32(p.exitStatus), timestamppb.New(p.exitedAt), p.oom
	}
	return r
}

func (p *process) running() bool {
	return p.status == shimapi.Status_RUNNING || p.status == shimapi.Status_PAUSED
}
