package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"berth.dev/berth/spec"
)

func taskObject(t *testing.T, name string, pid int, ready bool) listedObject {
	t.Helper()
	st := spec.ConditionFalse
	if ready {
		st = spec.ConditionTrue
	}
	o := map[string]any{
		"apiVersion": spec.APIVersion, "kind": "Task",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec":     map[string]any{"container": name},
		"status": map[string]any{
			"conditions": []map[string]any{{"type": "Ready", "status": st, "lastTransitionTime": time.Now().Add(-time.Hour)}},
			"pid":        pid, "state": "running",
		},
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	l := listedObject{source: "api", generation: 1}
	if err := json.Unmarshal(b, &l.obj); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &l.view); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWatchPrinter: get -w prints the table, then only the rows that
// changed (AGE aside), lined up under the header, and a Deleted row for
// an object gone.
func TestWatchPrinter(t *testing.T) {
	var out bytes.Buffer
	w := &watchPrinter{out: &out, last: map[string][]string{}}
	a, b := taskObject(t, "a", 10, true), taskObject(t, "bb", 11, true)
	if err := w.printAll("Task", []listedObject{a, b}); err != nil {
		t.Fatal(err)
	}
	first := out.String()
	for _, step := range []struct {
		name string
		objs []listedObject
		want string
	}{
		{"nothing changed", []listedObject{a, b}, ""},
		{"a's pid", []listedObject{taskObject(t, "a", 12, true), b}, "a      True    running   12    0          -      1h    api\n"},
		{"bb gone", []listedObject{taskObject(t, "a", 12, true)}, "bb     Deleted   running   11    0          -      1h    api\n"},
		// Columns only widen: READY kept Deleted's width, NAME takes the new one.
		{"a new one, longer", []listedObject{taskObject(t, "a", 12, true), taskObject(t, "cccccccc", 13, false)}, "cccccccc   False     running   13    0          -      1h    api\n"},
	} {
		out.Reset()
		if err := w.update("Task", step.objs); err != nil {
			t.Fatal(err)
		}
		if out.String() != step.want {
			t.Errorf("%s: printed %q, want %q", step.name, out.String(), step.want)
		}
	}
	want := "NAME   READY   STATE     PID   RESTARTS   EXIT   AGE   SOURCE\n" +
		"a      True    running   10    0          -      1h    api\n" +
		"bb     True    running   11    0          -      1h    api\n"
	if first != want {
		t.Errorf("first table:\n%s\nwant:\n%s", first, want)
	}
}
