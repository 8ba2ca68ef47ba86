package controller

import (
	"context"
	"testing"
	"time"

	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
)

// A task found gone is an exit the restart policy judges only when the
// container's recorded exit is that of the run its status kept: the exit
// it already shows, or the exit of the pid it shows running.
func TestExitOfLastRun(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	c := New(Options{DB: db})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := db.CreateContainer(ctx, "default", observed.Container{ID: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateContainer(ctx, "default", observed.Container{ID: "fresh"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateContainer(ctx, "default", "web", func(ctr *observed.Container) error {
		ctr.LastExit = &observed.Exit{Pid: 42, ExitStatus: 255, ExitedAt: at}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, id string
		prev     spec.TaskStatus
		want     bool
	}{
		{"running pid exited", "web", spec.TaskStatus{State: spec.TaskPhaseRunning, Pid: 42}, true},
		{"paused pid exited", "web", spec.TaskStatus{State: spec.TaskPhasePaused, Pid: 42}, true},
		{"exit already shown", "web", spec.TaskStatus{State: spec.TaskPhaseExited, FinishedAt: at}, true},
		{"exit of an earlier run", "web", spec.TaskStatus{State: spec.TaskPhaseRunning, Pid: 43}, false},
		{"another exit shown", "web", spec.TaskStatus{State: spec.TaskPhaseExited, FinishedAt: at.Add(-time.Hour)}, false},
		{"never started", "web", spec.TaskStatus{}, false},
		{"no exit recorded", "fresh", spec.TaskStatus{State: spec.TaskPhaseRunning, Pid: 42}, false},
		{"no container", "gone", spec.TaskStatus{State: spec.TaskPhaseRunning, Pid: 42}, false},
	} {
		if got := c.exitOfLastRun(ctx, "default", tc.id, tc.prev) != nil; got != tc.want {
			t.Errorf("%s: exit of last run %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRestarts(t *testing.T) {
	for _, tc := range []struct {
		policy spec.RestartPolicy
		status uint32
		want   bool
	}{
		{spec.RestartNever, 255, false},
		{spec.RestartNever, 0, false},
		{spec.RestartOnFailure, 0, false},
		{spec.RestartOnFailure, 255, true},
		{spec.RestartAlways, 0, true},
	} {
		if got := restarts(spec.TaskSpec{RestartPolicy: tc.policy}, tc.status); got != tc.want {
			t.Errorf("%s, status %d: restarts %v, want %v", tc.policy, tc.status, got, tc.want)
		}
	}
}
