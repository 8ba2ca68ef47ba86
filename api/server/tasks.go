package server

import (
	"context"
	"syscall"

	tasksapi "berth.dev/berth/api/tasks/v1"
	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/plan"
	"berth.dev/berth/spec"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Tasks serves the node's tasks.
//
// The task service is containerd's shape (create, start, wait, kill,
// delete, exec) so that clients written for it map one to one. Each call
// is one node operation and returns when it is done: unlike Manifests,
// nothing here is recorded as intent, so a task made through it is the
// caller's to stop and delete, and no controller restarts it.
type Tasks struct {
	Node node.Tasks
	// Desired, when set, lets logs follow a declared Task across the
	// restarts its policy makes (and DB across its container's
	// recreation).
	Desired *desired.Store
	DB      *observed.DB
}

var _ tasksapi.TasksService = (*Tasks)(nil)

// stdioFromAPI takes the FIFO paths the client made: berthd opens
// nothing itself, the shim does, so a client that goes away leaves no
// open descriptor in berthd.
func stdioFromAPI(s *tasksapi.Stdio) node.Stdio {
	return node.Stdio{Stdin: s.GetStdin(), Stdout: s.GetStdout(), Stderr: s.GetStderr(), Terminal: s.GetTerminal()}
}

// taskToAPI leaves ExitedAt unset for a task that has not exited: a zero
// time on the wire would read as 1970 to a client.
func taskToAPI(t node.TaskInfo) *tasksapi.Task {
	a := &tasksapi.Task{Id: t.ID, Pid: t.Pid, Status: string(t.Status), ExitStatus: t.ExitStatus, OomKilled: t.OOMKilled}
	if !t.ExitedAt.IsZero() {
		a.ExitedAt = timestamppb.New(t.ExitedAt)
	}
	return a
}

// Create makes the task without starting it, so a client can attach to
// its stdio before the process writes anything (berth run does).
func (s *Tasks) Create(ctx context.Context, r *tasksapi.CreateTaskRequest) (*tasksapi.CreateTaskResponse, error) {
	create := s.Node.CreateTask
	if r.Start {
		create = s.Node.RunTask
	}
	t, err := create(ctx, r.Namespace, r.ContainerId, stdioFromAPI(r.Stdio))
	if err != nil {
		return nil, err
	}
	return &tasksapi.CreateTaskResponse{Task: taskToAPI(t)}, nil
}

// Start starts the task, or with an exec ID one of its execs: containerd
// has one verb for both, and so does the node.
func (s *Tasks) Start(ctx context.Context, r *tasksapi.StartTaskRequest) (*tasksapi.StartTaskResponse, error) {
	pid, err := s.Node.StartTask(ctx, r.Namespace, r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return &tasksapi.StartTaskResponse{Pid: pid}, nil
}

// Get asks the node, not the database: a task's phase lives in its shim,
// and a record could be stale after a crash.
func (s *Tasks) Get(ctx context.Context, r *tasksapi.GetTaskRequest) (*tasksapi.GetTaskResponse, error) {
	t, err := s.Node.GetTask(ctx, r.Namespace, r.ContainerId)
	if err != nil {
		return nil, err
	}
	return &tasksapi.GetTaskResponse{Task: taskToAPI(t)}, nil
}

func (s *Tasks) List(ctx context.Context, r *tasksapi.ListTasksRequest) (*tasksapi.ListTasksResponse, error) {
	ts, err := s.Node.ListTasks(ctx, r.Namespace)
	if err != nil {
		return nil, err
	}
	resp := &tasksapi.ListTasksResponse{}
	for _, t := range ts {
		resp.Tasks = append(resp.Tasks, taskToAPI(t))
	}
	return resp, nil
}

// Kill sends a signal; it does not wait. A caller that wants the task
// gone waits with Wait and then deletes, as the controllers' stop does.
func (s *Tasks) Kill(ctx context.Context, r *tasksapi.KillTaskRequest) (*tasksapi.KillTaskResponse, error) {
	sig := syscall.Signal(r.Signal)
	if sig == 0 { // no signal named: the one a stop sends (the container's stopSignal)
		sig = s.Node.StopSignal(ctx, r.Namespace, r.ContainerId)
	}
	return &tasksapi.KillTaskResponse{}, s.Node.KillTask(ctx, r.Namespace, r.ContainerId, r.ExecId, sig, r.All)
}

// Wait blocks until the task (or exec) exits or the call's context ends;
// the exit it returns is the shim's durable record, so it is the same
// whether the task exited just now or while berthd was down.
func (s *Tasks) Wait(ctx context.Context, r *tasksapi.WaitTaskRequest) (*tasksapi.WaitTaskResponse, error) {
	e, err := s.Node.WaitTask(ctx, r.Namespace, r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return &tasksapi.WaitTaskResponse{ExitStatus: e.ExitStatus, ExitedAt: timestamppb.New(e.ExitedAt), OomKilled: e.OOMKilled}, nil
}

// Pause and Resume freeze and thaw the task's cgroup: the processes stay,
// only their scheduling stops.
func (s *Tasks) Pause(ctx context.Context, r *tasksapi.PauseTaskRequest) (*tasksapi.PauseTaskResponse, error) {
	return &tasksapi.PauseTaskResponse{}, s.Node.PauseTask(ctx, r.Namespace, r.ContainerId)
}

func (s *Tasks) Resume(ctx context.Context, r *tasksapi.ResumeTaskRequest) (*tasksapi.ResumeTaskResponse, error) {
	return &tasksapi.ResumeTaskResponse{}, s.Node.ResumeTask(ctx, r.Namespace, r.ContainerId)
}

// Delete removes a stopped task (force kills a live one first) and frees
// its shim and bundle; the container and its snapshot stay.
func (s *Tasks) Delete(ctx context.Context, r *tasksapi.DeleteTaskRequest) (*tasksapi.DeleteTaskResponse, error) {
	e, err := s.Node.DeleteTask(ctx, r.Namespace, r.ContainerId, r.Force)
	if err != nil {
		return nil, err
	}
	resp := &tasksapi.DeleteTaskResponse{ExitStatus: e.ExitStatus}
	if !e.ExitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(e.ExitedAt)
	}
	return resp, nil
}

// Exec adds a process to a running task; like Create it does not start
// it, so the client's stdio is ready first.
func (s *Tasks) Exec(ctx context.Context, r *tasksapi.ExecProcessRequest) (*tasksapi.ExecProcessResponse, error) {
	return &tasksapi.ExecProcessResponse{}, s.Node.Exec(ctx, r.Namespace, r.ContainerId, r.ExecId, node.ExecOptions{
		Args: r.Args, Env: r.Env, Cwd: r.Cwd, User: r.User, Stdio: stdioFromAPI(r.Stdio)})
}

func (s *Tasks) StartExec(ctx context.Context, r *tasksapi.StartExecRequest) (*tasksapi.StartExecResponse, error) {
	pid, err := s.Node.StartTask(ctx, r.Namespace, r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return &tasksapi.StartExecResponse{Pid: pid}, nil
}

// DeleteExec releases an exited exec and says how it ended; an exec's
// exit is not recorded anywhere else.
func (s *Tasks) DeleteExec(ctx context.Context, r *tasksapi.DeleteExecRequest) (*tasksapi.DeleteExecResponse, error) {
	st, err := s.Node.DeleteExec(ctx, r.Namespace, r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return &tasksapi.DeleteExecResponse{ExitStatus: st}, nil
}

// ResizePty and CloseIO act on the shim's terminal and stdin: a client
// forwards its window changes and its end of input through them.
func (s *Tasks) ResizePty(ctx context.Context, r *tasksapi.ResizePtyRequest) (*tasksapi.ResizePtyResponse, error) {
	return &tasksapi.ResizePtyResponse{}, s.Node.ResizePty(ctx, r.Namespace, r.ContainerId, r.ExecId, r.Width, r.Height)
}

func (s *Tasks) CloseIO(ctx context.Context, r *tasksapi.CloseIORequest) (*tasksapi.CloseIOResponse, error) {
	return &tasksapi.CloseIOResponse{}, s.Node.CloseIO(ctx, r.Namespace, r.ContainerId, r.ExecId)
}

// Pids lists the task's processes, as `berth task ps` shows them.
func (s *Tasks) Pids(ctx context.Context, r *tasksapi.PidsRequest) (*tasksapi.PidsResponse, error) {
	ps, err := s.Node.TaskPids(ctx, r.Namespace, r.ContainerId)
	if err != nil {
		return nil, err
	}
	resp := &tasksapi.PidsResponse{}
	for _, p := range ps {
		resp.Processes = append(resp.Processes, &tasksapi.ProcessInfo{Pid: p.Pid, Command: p.Command})
	}
	return resp, nil
}

// Metrics reads the task's cgroup figures; network counters are added
// only for a bridged container (has_network says which), since a host or
// none container has no interface of its own to count.
func (s *Tasks) Metrics(ctx context.Context, r *tasksapi.MetricsRequest) (*tasksapi.MetricsResponse, error) {
	m, err := s.Node.TaskMetrics(ctx, r.Namespace, r.ContainerId)
	if err != nil {
		return nil, err
	}
	resp := &tasksapi.MetricsResponse{CpuUsageNs: m.CPUUsageNs, MemoryUsage: m.MemoryUsage, MemoryLimit: m.MemoryLimit,
		MemoryMaxUsage: m.MemoryMaxUsage, OomKills: m.OOMKills, PidsCurrent: m.PidsCurrent, PidsLimit: m.PidsLimit,
		Timestamp: timestamppb.New(m.Timestamp)}
	if n, err := s.Node.NetworkStats(r.Namespace, r.ContainerId); err == nil {
		resp.HasNetwork, resp.NetRxBytes, resp.NetTxBytes = true, n.RxBytes, n.TxBytes
	}
	return resp, nil
}

// Logs streams the container's log records; a line ends with "\n" unless
// the record is partial.
func (s *Tasks) Logs(ctx context.Context, r *tasksapi.LogsRequest, stream tasksapi.Tasks_LogsServer) error {
	opts := node.LogOptions{Tail: int(r.Tail), Follow: r.Follow}
	if r.FollowRestarts && s.Desired != nil {
		opts.Restarts = func(exit *observed.Exit) bool {
			return willRestart(s.Desired, r.Namespace, r.ContainerId, exit) || s.recreating(ctx, r.Namespace, r.ContainerId)
		}
	}
	if r.Since != nil {
		opts.Since = r.Since.AsTime()
	}
	if r.Until != nil {
		opts.Until = r.Until.AsTime()
	}
	return streamErr(s.Node.Logs(ctx, r.Namespace, r.ContainerId, opts, func(e node.LogEntry) error {
		data := append([]byte(nil), e.Text...)
		if !e.Partial {
			data = append(data, '\n')
		}
		return stream.Send(&tasksapi.LogChunk{Stream: e.Stream, Data: data, Time: timestamppb.New(e.Time)})
	}))
}

// recreating reports whether the container's declared Container is not
// what the container on the node was made from: the controller recreates
// it and starts its Task afresh, whatever the restart policy says of the
// exit the recreation's stop caused.
func (s *Tasks) recreating(ctx context.Context, ns, id string) bool {
	if s.DB == nil {
		return false
	}
	if ns == "" {
		ns = spec.DefaultNamespace
	}
	e, ok := s.Desired.Get(spec.Key{Namespace: ns, Kind: spec.KindContainer, Name: id})
	if !ok || !willRestart(s.Desired, ns, id, nil) {
		return false
	}
	c, err := s.DB.GetContainer(ctx, ns, id)
	return err != nil || c.Labels[spec.LabelSpecHash] != spec.ContainerInstanceHash(e.Hash, c.ImageDigest)
}

// willRestart reports whether a Task declared to run the container will
// start it again after exit (nil: a run that ended in a way not known, or
// none yet): its state is Running and its restart policy restarts that
// exit.
func willRestart(d *desired.Store, ns, id string, exit *observed.Exit) bool {
	for _, e := range d.List(desired.Filter{Namespace: defaultNS(ns), Kind: spec.KindTask}) {
		ts, ok := e.Object.TaskSpec()
		if !ok || ts.Container != id || ts.State != spec.TaskRunning {
			continue
		}
		// The restart policy's rule is plan's, the one the reconciler
		// applies.
		return exit == nil || plan.Restarts(ts.RestartPolicy, exit.ExitStatus)
	}
	return false
}
