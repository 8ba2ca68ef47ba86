package plan

import (
	"testing"
	"time"

	"berth.dev/berth/spec"
	"github.com/google/go-cmp/cmp"
)

func TestImage(t *testing.T) {
	t.Parallel()
	always := spec.ImageSpec{Ref: "r/a:1", PullPolicy: spec.PullAlways}
	ifNot := spec.ImageSpec{Ref: "r/a:1", PullPolicy: spec.PullIfNotPresent}
	for _, tc := range []struct {
		name string
		is   spec.ImageSpec
		f    ImageFacts
		want []Verb
	}{
		{"absent", ifNot, ImageFacts{}, []Verb{Pull}},
		{"present, unpacked", ifNot, ImageFacts{Present: true, Unpacked: true, StatusHash: "old"}, nil},
		{"present, not unpacked", ifNot, ImageFacts{Present: true, StatusHash: "h"}, []Verb{Unpack}},
		{"Always, spec changed", always, ImageFacts{Present: true, Unpacked: true, StatusHash: "old"}, []Verb{Pull}},
		{"Always, unchanged", always, ImageFacts{Present: true, Unpacked: true, StatusHash: "h"}, nil},
		{"Always, a resync since", always, ImageFacts{Present: true, Unpacked: true, StatusHash: "h", PullDue: true}, []Verb{Pull}},
		{"IfNotPresent ignores PullDue", ifNot, ImageFacts{Present: true, Unpacked: true, StatusHash: "h", PullDue: true}, nil},
	} {
		if got := Verbs(Image(tc.is, "h", tc.f)); len(got) != len(tc.want) || (len(got) > 0 && !cmp.Equal(got, tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestContainer(t *testing.T) {
	t.Parallel()
	made := ContainerFacts{Exists: true, InstanceHash: spec.ContainerInstanceHash("h", "sha256:1"), ImageDigest: "sha256:1", SnapshotPresent: true}
	for _, tc := range []struct {
		name   string
		w      ContainerWant
		f      ContainerFacts
		want   []Verb
		fields []string
	}{
		{"absent", ContainerWant{Hash: "h", ImageDigest: "sha256:1"}, ContainerFacts{}, []Verb{Create}, nil},
		{"as made", ContainerWant{Hash: "h", ImageDigest: "sha256:1"}, made, nil, nil},
		{"spec changed", ContainerWant{Hash: "h2", ImageDigest: "sha256:1", Changed: []string{"spec.env"}}, made, []Verb{Recreate}, []string{"spec.env"}},
		{"image moved", ContainerWant{Hash: "h", ImageDigest: "sha256:2"}, made, []Verb{Recreate}, []string{"image"}},
		{"image to be pulled", ContainerWant{Hash: "h", ImageDigest: "sha256:1", ImagePull: true}, made, []Verb{Recreate}, []string{"image"}},
		{"network changed", ContainerWant{Hash: "h", ImageDigest: "sha256:1", Network: "n2", NetworkDeclared: true},
			ContainerFacts{Exists: true, InstanceHash: made.InstanceHash, ImageDigest: "sha256:1", NetworkHash: "n1", SnapshotPresent: true}, []Verb{Recreate}, []string{"spec.network"}},
		{"network undeclared disturbs none", ContainerWant{Hash: "h", ImageDigest: "sha256:1"},
			ContainerFacts{Exists: true, InstanceHash: made.InstanceHash, ImageDigest: "sha256:1", NetworkHash: "n1", SnapshotPresent: true}, nil, nil},
		{"snapshot removed", ContainerWant{Hash: "h", ImageDigest: "sha256:1"},
			ContainerFacts{Exists: true, InstanceHash: made.InstanceHash, ImageDigest: "sha256:1"}, []Verb{Recreate}, nil},
	} {
		acts := Container(tc.w, tc.f)
		if got := Verbs(acts); len(got) != len(tc.want) || (len(got) > 0 && !cmp.Equal(got, tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		if len(acts) > 0 && !cmp.Equal(acts[0].Fields, tc.fields) {
			t.Errorf("%s: fields %v, want %v", tc.name, acts[0].Fields, tc.fields)
		}
	}
}

func TestTask(t *testing.T) {
	t.Parallel()
	run := func(p spec.RestartPolicy) spec.TaskSpec {
		return spec.TaskSpec{Container: "web", State: spec.TaskRunning, RestartPolicy: p}
	}
	paused := spec.TaskSpec{Container: "web", State: spec.TaskPaused, RestartPolicy: spec.RestartAlways}
	stopped := spec.TaskSpec{Container: "web", State: spec.TaskStopped}
	for _, tc := range []struct {
		name string
		ts   spec.TaskSpec
		f    TaskFacts
		want []Verb
	}{
		{"no task", run(spec.RestartAlways), TaskFacts{}, []Verb{Start}},
		{"running", run(spec.RestartAlways), TaskFacts{Phase: spec.TaskPhaseRunning}, nil},
		{"created", run(spec.RestartAlways), TaskFacts{Phase: spec.TaskPhaseCreated}, []Verb{Start}},
		{"paused, wants running", run(spec.RestartAlways), TaskFacts{Phase: spec.TaskPhasePaused}, []Verb{Resume}},
		{"exited, Always", run(spec.RestartAlways), TaskFacts{Phase: spec.TaskPhaseStopped}, []Verb{Restart}},
		{"exited 0, OnFailure", run(spec.RestartOnFailure), TaskFacts{Phase: spec.TaskPhaseStopped}, nil},
		{"exited 3, OnFailure", run(spec.RestartOnFailure), TaskFacts{Phase: spec.TaskPhaseStopped, ExitStatus: 3}, []Verb{Restart}},
		{"exited 3, Never", run(spec.RestartNever), TaskFacts{Phase: spec.TaskPhaseStopped, ExitStatus: 3}, nil},
		{"gone after an exit Never keeps", run(spec.RestartNever), TaskFacts{LastExit: &Exit{Status: 1}}, nil},
		{"gone after an exit Always restarts", run(spec.RestartAlways), TaskFacts{LastExit: &Exit{Status: 1}}, []Verb{Start}},
		{"gone, container replaced", run(spec.RestartNever), TaskFacts{Replaced: true, LastExit: &Exit{Status: 1}}, []Verb{Start}},
		{"shim unreachable", run(spec.RestartAlways), TaskFacts{Phase: spec.TaskPhaseUnknown}, nil},
		{"container recreated", run(spec.RestartAlways), TaskFacts{Phase: spec.TaskPhaseRunning, ContainerChanges: true}, []Verb{Restart}},
		{"container in use", run(spec.RestartAlways), TaskFacts{Owner: "a-other"}, []Verb{Wait}},
		{"owner is itself", run(spec.RestartAlways), TaskFacts{Owner: "web"}, []Verb{Start}},
		{"stop a running one", stopped, TaskFacts{Phase: spec.TaskPhaseRunning}, []Verb{Stop}},
		{"stopped stays", stopped, TaskFacts{Phase: spec.TaskPhaseStopped}, nil},
		{"paused from nothing", paused, TaskFacts{}, []Verb{Start, Pause}},
		{"pause a running one", paused, TaskFacts{Phase: spec.TaskPhaseRunning}, []Verb{Pause}},
		{"paused stays", paused, TaskFacts{Phase: spec.TaskPhasePaused}, nil},
		{"paused, shim unreachable", paused, TaskFacts{Phase: spec.TaskPhaseUnknown}, nil},
		{"paused, container recreated", paused, TaskFacts{Phase: spec.TaskPhasePaused, ContainerChanges: true}, []Verb{Restart, Pause}},
	} {
		if got := Verbs(Task("web", tc.ts, tc.f)); len(got) != len(tc.want) || (len(got) > 0 && !cmp.Equal(got, tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIsLastRunAndReplaced(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		prev spec.TaskStatus
		pid  uint32
		want bool
	}{
		{"running pid exited", spec.TaskStatus{State: spec.TaskPhaseRunning, Pid: 42}, 42, true},
		{"another pid", spec.TaskStatus{State: spec.TaskPhaseRunning, Pid: 43}, 42, false},
		{"exit already shown", spec.TaskStatus{State: spec.TaskPhaseExited, FinishedAt: at}, 42, true},
		{"never started", spec.TaskStatus{}, 42, false},
	} {
		if got := IsLastRun(tc.prev, tc.pid, at); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if Replaced(spec.TaskStatus{}, at) {
		t.Error("a status that kept no creation time says replaced")
	}
	if !Replaced(spec.TaskStatus{ContainerCreatedAt: at}, at.Add(time.Second)) || Replaced(spec.TaskStatus{ContainerCreatedAt: at}, at) {
		t.Error("Replaced does not compare the creation times")
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	if got := Verbs(Network("h", NetworkFacts{}, nil)); !cmp.Equal(got, []Verb{Create}) {
		t.Errorf("new: %v", got)
	}
	if got := Network("h", NetworkFacts{StatusHash: "old"}, []string{"spec.mtu"}); len(got) != 1 || got[0].Verb != Recreate || !cmp.Equal(got[0].Fields, []string{"spec.mtu"}) {
		t.Errorf("changed: %+v", got)
	}
	if got := Network("h", NetworkFacts{StatusHash: "h"}, nil); len(got) != 0 {
		t.Errorf("written: %v", got)
	}
}
