// Package plan decides what the node must do for an object to match its
// manifest: desired state and observed facts in, actions out. It is pure
// (no I/O, no clock) so that the rule lives in one place: the reconcilers
// execute what it returns and `berth diff` prints it, and the two cannot
// disagree on a case the plan decides.
//
// Each kind has one function. Its inputs are plain facts the caller
// gathers (the controller from observed.DB and the node, diff the same way
// before anything changes); what only a live reconcile can know (a
// registry's answer, how long a backoff still has to run) stays out of the
// plan, and the actions' reasons say so where it matters.
package plan

import (
	"fmt"
	"time"

	"berth.dev/berth/spec"
)

// Verb is one thing the node does for an object.
type Verb string

// The verbs, in the words berth diff prints.
const (
	Pull     Verb = "pull"     // fetch the image (from its offline source first)
	Unpack   Verb = "unpack"   // unpack a present image onto its snapshotter
	Create   Verb = "create"   // make the container
	Recreate Verb = "recreate" // remove the container (and its task), make it again
	Start    Verb = "start"    // create and start the task
	Stop     Verb = "stop"     // stop the task (its stop signal, then SIGKILL) and delete it
	Pause    Verb = "pause"
	Resume   Verb = "resume"
	Restart  Verb = "restart" // the task ends (an exit, or its container's recreation) and starts again
	// Wait is no change on the node: the object waits on another one
	// (a container already run by another Task).
	Wait Verb = "wait"
)

// Action is one step of a plan.
type Action struct {
	Verb   Verb
	Reason string
	// Fields are the spec fields that caused it, where known
	// ("spec.env"); diff prints them.
	Fields []string
}

// Has reports whether acts holds verb.
func Has(acts []Action, verb Verb) bool {
	for _, a := range acts {
		if a.Verb == verb {
			return true
		}
	}
	return false
}

// Verbs are the verbs of acts in order.
func Verbs(acts []Action) []Verb {
	out := make([]Verb, len(acts))
	for i, a := range acts {
		out[i] = a.Verb
	}
	return out
}

// ImageFacts is what is observed of an Image object.
type ImageFacts struct {
	// Present: an image record exists under the Image's normalised name.
	Present bool
	// Unpacked: the record is unpacked on the Image's snapshotter.
	Unpacked bool
	// StatusHash is the spec hash the Image's status was last recorded
	// for ("" when it has none): what the node last converged on.
	StatusHash string
	// PullDue: pullPolicy Always and a resync period since the last pull
	// (the controller's timer; diff passes false, a due re-pull being no
	// difference between manifests and node).
	PullDue bool
}

// Image plans an Image of spec hash hash.
func Image(is spec.ImageSpec, hash string, f ImageFacts) []Action {
	switch {
	case !f.Present:
		why := "not on the node"
		switch {
		case is.Source != nil:
			why += "; from its offline source first"
		case is.PullPolicy == spec.PullNever:
			why += " and pullPolicy is Never: it fails until the image is imported"
		}
		return []Action{{Verb: Pull, Reason: why}}
	// An updatePolicy moves the digest itself, one Container at a time:
	// no re-pull here moves them all at once.
	case is.PullPolicy == spec.PullAlways && is.UpdatePolicy == nil && f.StatusHash != hash:
		return []Action{{Verb: Pull, Reason: "spec changed and pullPolicy is Always"}}
	case is.PullPolicy == spec.PullAlways && is.UpdatePolicy == nil && f.PullDue:
		return []Action{{Verb: Pull, Reason: "pullPolicy is Always: a resync period since the last pull"}}
	case !f.Unpacked:
		return []Action{{Verb: Unpack, Reason: "not unpacked on its snapshotter"}}
	}
	return nil
}

// ContainerWant is what a Container should be made from.
type ContainerWant struct {
	// Hash is the Container's spec hash; ImageDigest the digest its Image
	// resolves to now.
	Hash, ImageDigest string
	// ImagePull: its Image's plan pulls it (diff): the digest may move, so
	// the container would be made again if it does.
	ImagePull bool
	// Network is the spec hash of the declared Network it names;
	// NetworkDeclared false for the built-in network, host or none.
	Network         string
	NetworkDeclared bool
	// Changed are the spec fields that differ from the Container in force
	// (diff's view), to say why a recreate happens.
	Changed []string
}

// ContainerFacts is what is observed of the container a Container owns.
type ContainerFacts struct {
	Exists bool
	// InstanceHash and NetworkHash are its labels: what it was made from.
	InstanceHash, NetworkHash string
	// ImageDigest is the image digest it was made from.
	ImageDigest string
	// SnapshotPresent: its rw snapshot is on its snapshotter.
	SnapshotPresent bool
}

// Container plans a Container.
func Container(w ContainerWant, f ContainerFacts) []Action {
	if !f.Exists {
		return []Action{{Verb: Create, Reason: "no container on the node"}}
	}
	if w.ImagePull {
		return []Action{{Verb: Recreate, Reason: "its Image will be pulled again (made again if the digest moves)", Fields: []string{"image"}}}
	}
	if f.InstanceHash != spec.ContainerInstanceHash(w.Hash, w.ImageDigest) {
		switch {
		case len(w.Changed) > 0:
			return []Action{{Verb: Recreate, Reason: "spec changed", Fields: w.Changed}}
		case f.ImageDigest != w.ImageDigest:
			return []Action{{Verb: Recreate, Reason: "its Image now resolves to " + w.ImageDigest, Fields: []string{"image"}}}
		}
		return []Action{{Verb: Recreate, Reason: "the container was not made from this spec", Fields: []string{"spec"}}}
	}
	if w.NetworkDeclared && f.NetworkHash != w.Network {
		return []Action{{Verb: Recreate, Reason: "its Network changed", Fields: []string{"spec.network"}}}
	}
	if !f.SnapshotPresent {
		return []Action{{Verb: Recreate, Reason: "its snapshot was removed"}}
	}
	return nil
}

// Exit is a task's exit.
type Exit struct {
	Status uint32
}

// TaskFacts is what is observed of the task a Task runs.
type TaskFacts struct {
	// Phase is the task's phase on the node ("" when there is none).
	Phase spec.TaskPhase
	// ExitStatus is its exit status when Phase is stopped.
	ExitStatus uint32
	// Owner is the declared Task that runs the container: the first by
	// name of those naming it ("" for none).
	Owner string
	// ContainerChanges: its Container's plan creates or recreates the
	// container (diff: the task then starts afresh in the new one).
	ContainerChanges bool
	// Replaced: the container is newer than the one the task last ran in
	// (recreated on purpose: a fresh start, no restart counted).
	Replaced bool
	// LastExit is the exit of the task's last run when no task is left
	// (its shim died, a restarted berthd cleaned its bundle up), nil when
	// unknown: an exit the restart policy judges, not drift.
	LastExit *Exit
}

// Task plans Task name.
func Task(name string, ts spec.TaskSpec, f TaskFacts) []Action {
	if f.Owner != "" && f.Owner != name {
		return []Action{{Verb: Wait, Reason: fmt.Sprintf("Container %s is run by Task %s (the first by name)", ts.Container, f.Owner)}}
	}
	live := f.Phase.Live()
	renew := live && f.ContainerChanges
	switch ts.State {
	case spec.TaskStopped:
		if live {
			return []Action{{Verb: Stop, Reason: "state is Stopped"}}
		}
		return nil
	case spec.TaskPaused:
		switch {
		case renew:
			return []Action{{Verb: Restart, Reason: "its Container " + ts.Container + " will be recreated", Fields: []string{"container"}},
				{Verb: Pause, Reason: "state is Paused"}}
		case f.Phase == spec.TaskPhaseRunning:
			return []Action{{Verb: Pause, Reason: "state is Paused"}}
		case f.Phase == spec.TaskPhasePaused, f.Phase == spec.TaskPhaseUnknown:
			return nil // a shim that does not answer is left alone
		}
		return []Action{{Verb: Start, Reason: "no running task"}, {Verb: Pause, Reason: "state is Paused"}}
	}
	switch {
	case renew:
		return []Action{{Verb: Restart, Reason: "its Container " + ts.Container + " will be recreated", Fields: []string{"container"}}}
	case f.Phase == "":
		if !f.Replaced && f.LastExit != nil && !Restarts(ts.RestartPolicy, f.LastExit.Status) {
			return nil // it exited and its policy keeps it so
		}
		return []Action{{Verb: Start, Reason: "no task"}}
	case f.Phase == spec.TaskPhaseCreated:
		return []Action{{Verb: Start, Reason: "task is created, not started"}}
	case f.Phase == spec.TaskPhasePaused:
		return []Action{{Verb: Resume, Reason: "state is Running"}}
	case f.Phase == spec.TaskPhaseStopped:
		if Restarts(ts.RestartPolicy, f.ExitStatus) {
			return []Action{{Verb: Restart, Reason: fmt.Sprintf("exited with status %d; restartPolicy %s", f.ExitStatus, ts.RestartPolicy)}}
		}
	}
	// Running, an exit its policy keeps, or a shim that does not answer
	// (its exit, once known, is judged then).
	return nil
}

// IsLastRun reports whether the exit recorded on a container (its pid and
// time) is the exit of the last run a Task's status prev kept: the exit the
// status already shows, or the exit of the pid it shows running.
func IsLastRun(prev spec.TaskStatus, pid uint32, exitedAt time.Time) bool {
	switch prev.State {
	case spec.TaskPhaseExited:
		return exitedAt.Equal(prev.FinishedAt)
	case spec.TaskPhaseRunning, spec.TaskPhasePaused:
		return prev.Pid > 0 && pid == uint32(prev.Pid)
	}
	return false
}

// Replaced reports whether a container created at createdAt is not the one
// a Task's status prev last ran in. It is derived from what is recorded,
// never from memory a restart loses; a status from before that time was
// kept says no.
func Replaced(prev spec.TaskStatus, createdAt time.Time) bool {
	return !prev.ContainerCreatedAt.IsZero() && !createdAt.Equal(prev.ContainerCreatedAt)
}

// Restarts reports whether restart policy p restarts a task that exited
// with status.
func Restarts(p spec.RestartPolicy, status uint32) bool {
	return p == spec.RestartAlways || (p == spec.RestartOnFailure && status != 0)
}

// NetworkFacts is what is observed of a Network.
type NetworkFacts struct {
	// StatusHash is the spec hash its status was last recorded for (""
	// when it has none: nothing was written for it yet).
	StatusHash string
}

// Network plans a Network of spec hash hash. The reconciler writes the
// conflist on every pass (a rewrite of an unchanged one changes nothing
// and repairs drift), so the plan says only whether a pass changes what
// is on the node; its Containers follow by their own plan, whose
// ContainerWant.Network is this hash.
func Network(hash string, f NetworkFacts, changed []string) []Action {
	switch {
	case f.StatusHash == "":
		return []Action{{Verb: Create, Reason: "no network written on the node"}}
	case f.StatusHash != hash:
		return []Action{{Verb: Recreate, Reason: "spec changed: its conflist is written again and its containers made again", Fields: changed}}
	}
	return nil
}
