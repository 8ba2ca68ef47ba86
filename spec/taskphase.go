package spec

// TaskPhase is what a task is observed to be doing: one vocabulary for the
// node's task table, a Task's status and what diff and the CLI print. (A
// Task's spec.state, TaskState, is the desired side: Running, Stopped or
// Paused.)
type TaskPhase string

// The phases of a task. Exited is a Task's status only: the task ended by
// itself and was not restarted (Stopped is a stop asked for, or what the
// node reports of any ended task).
const (
	TaskPhaseUnknown TaskPhase = "unknown" // its shim does not answer
	TaskPhaseCreated TaskPhase = "created"
	TaskPhaseRunning TaskPhase = "running"
	TaskPhasePaused  TaskPhase = "paused"
	TaskPhaseStopped TaskPhase = "stopped"
	TaskPhaseExited  TaskPhase = "exited"
)

// Live reports whether a task in phase p still holds a process (created,
// running or paused): one that must be stopped before it can be removed.
func (p TaskPhase) Live() bool {
	return p == TaskPhaseCreated || p == TaskPhaseRunning || p == TaskPhasePaused
}
