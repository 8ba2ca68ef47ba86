package server

import (
	"context"
	"fmt"
	"testing"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/desired"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/google/go-cmp/cmp"
)

func TestWithRestarts(t *testing.T) {
	task := func(n string) spec.Key { return spec.Key{Namespace: "default", Kind: spec.KindTask, Name: n} }
	ctr := func(n string) spec.Key { return spec.Key{Namespace: "default", Kind: spec.KindContainer, Name: n} }
	results := []desired.Result{
		{Key: ctr("web"), Action: desired.Configured},
		{Key: task("web"), Action: desired.Unchanged},
		{Key: task("new"), Action: desired.Created},
		{Key: task("conf"), Action: desired.Configured},
	}
	got := withRestarts(results, map[spec.Key]spec.Key{
		task("web"): ctr("web"), task("new"): ctr("web"), task("conf"): ctr("web"), task("elsewhere"): ctr("web"),
	})
	why := "its Container default/web is recreated"
	want := []desired.Result{
		{Key: ctr("web"), Action: desired.Configured},
		{Key: task("web"), Action: Restarted, Message: why},
		{Key: task("new"), Action: desired.Created}, // a new Task starts, it is not restarted
		{Key: task("conf"), Action: Restarted, Message: why},
		{Key: task("elsewhere"), Action: Restarted, Message: why}, // in force, not in the apply
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("withRestarts (-want +got):\n%s", d)
	}
}

func TestWillRestart(t *testing.T) {
	ctx := context.Background()
	s := newManifests(t)
	doc := ""
	for _, tc := range []struct{ name, policy, state string }{
		{"always", "Always", "Running"}, {"onfailure", "OnFailure", "Running"},
		{"never", "Never", "Running"}, {"stopped", "Always", "Stopped"},
	} {
		doc += fmt.Sprintf("apiVersion: berth.dev/v1\nkind: Task\nmetadata: {name: %s}\nspec: {container: c-%[1]s, restartPolicy: %s, state: %s}\n---\n", tc.name, tc.policy, tc.state)
	}
	if _, err := s.Apply(ctx, &manifestsapi.ApplyRequest{Data: []byte(doc), File: "tasks.yaml"}); err != nil {
		t.Fatal(err)
	}
	exit := func(status uint32) *observed.Exit { return &observed.Exit{ExitStatus: status} }
	for _, tc := range []struct {
		container string
		exit      *observed.Exit
		want      bool
	}{
		{"c-always", exit(0), true},
		{"c-always", exit(1), true},
		{"c-onfailure", exit(0), false},
		{"c-onfailure", exit(137), true},
		{"c-onfailure", nil, true},
		{"c-never", exit(1), false},
		{"c-never", nil, true}, // its one run is still to come
		{"c-stopped", exit(1), false},
		{"c-undeclared", nil, false},
	} {
		if got := willRestart(s.Desired, "", tc.container, tc.exit); got != tc.want {
			t.Errorf("willRestart(%s, %+v) = %v, want %v", tc.container, tc.exit, got, tc.want)
		}
	}
}
