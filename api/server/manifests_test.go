package server

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	manifestsapi "berth.dev/berth/api/manifests/v1"
	"berth.dev/berth/desired"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

const imageYAML = `apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec:
  ref: example.local/busybox:latest
  pullPolicy: Never
  source: {archive: images/busybox.tar}
`

func newManifests(t *testing.T) *Manifests {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	obs, err := observed.New(db)
	if err != nil {
		t.Fatal(err)
	}
	store := desired.NewStore()
	api, err := desired.OpenAPISource(db, store)
	if err != nil {
		t.Fatal(err)
	}
	return &Manifests{Desired: store, API: api, DB: obs, Recent: observed.NewRecent(16)}
}

func actionsOf(rs []*manifestsapi.ObjectResult) map[string]string {
	m := map[string]string{}
	for _, r := range rs {
		m[r.Ref.Kind+"/"+r.Ref.Name] = r.Action
	}
	return m
}

func TestManifests_ApplyGetDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newManifests(t)
	resp, err := s.Apply(ctx, &manifestsapi.ApplyRequest{Data: []byte(imageYAML), File: "busybox.yaml", Dir: "/srv/m"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"Image/busybox": "created"}, actionsOf(resp.Results)); diff != "" {
		t.Errorf("apply (-want +got):\n%s", diff)
	}
	// The relative archive is made absolute against the client's directory.
	e, ok := s.Desired.Get(spec.Key{Namespace: "default", Kind: spec.KindImage, Name: "busybox"})
	if !ok {
		t.Fatal("not in the store")
	}
	if is, _ := e.Object.ImageSpec(); is.Source.Archive != "/srv/m/images/busybox.tar" {
		t.Errorf("archive: got %q, want /srv/m/images/busybox.tar", is.Source.Archive)
	}
	st := spec.Status{ObservedGeneration: 1, Conditions: []spec.Condition{{Type: spec.ConditionReady, Status: spec.ConditionTrue}},
		ImageStatus: &spec.ImageStatus{Digest: "sha256:abc"}}
	if err := s.DB.PutStatus(ctx, observed.ObjectStatus{Key: e.Key, Status: st}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, &manifestsapi.GetRequest{Kind: "images"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Objects) != 1 || got.Objects[0].Source != "api" || got.Objects[0].Generation != 1 {
		t.Fatalf("get: %v", got.Objects)
	}
	var o spec.Object
	if err := json.Unmarshal(got.Objects[0].Json, &o); err != nil {
		t.Fatal(err)
	}
	if o.Status.ImageStatus == nil || o.Status.Digest != "sha256:abc" {
		t.Errorf("status: got %+v", o.Status)
	}
	if _, err := s.Get(ctx, &manifestsapi.GetRequest{Kind: "task", Name: "nope"}); !errdefs.IsNotFound(err) {
		t.Errorf("get of an undeclared name: got %v, want NotFound", err)
	}

	// A file-owned object cannot be deleted through the API.
	s.Desired.Update(desired.SourceUpdate{Source: "/etc/berth/manifests/t.yaml", Objects: []spec.Object{spec.Default(spec.Object{
		Kind: spec.KindTask, Metadata: spec.Metadata{Name: "web"}, Spec: spec.TaskSpec{Container: "web"}})}})
	_, err = s.Delete(ctx, &manifestsapi.DeleteRequest{Refs: []*manifestsapi.Ref{{Kind: "task", Name: "web"}}})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "t.yaml") {
		t.Errorf("delete of a file's object: got %v, want FailedPrecondition naming t.yaml", err)
	}
	del, err := s.Delete(ctx, &manifestsapi.DeleteRequest{Refs: []*manifestsapi.Ref{{Kind: "Image", Name: "busybox"}, {Kind: "image", Name: "gone"}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"Image/busybox": "deleted", "Image/gone": "notfound"}, actionsOf(del.Results)); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
}

func TestManifests_ApplyErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newManifests(t)
	bad := imageYAML + "---\napiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec: {image: busybox, resources: {memory: 64Q}}\n"
	_, err := s.Apply(ctx, &manifestsapi.ApplyRequest{Files: []*manifestsapi.File{
		{Data: []byte(imageYAML), File: "a.yaml", Dir: "/m"},
		{Data: []byte(bad), File: "web.yaml", Dir: "/m"},
	}})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	want := `web.yaml: document 2: Container default/web: spec.resources.memory: "64Q"`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to contain %q", err, want)
	}
	if len(s.Desired.List(desired.Filter{})) != 0 {
		t.Error("an invalid set applied something")
	}
	if _, err := s.Apply(ctx, &manifestsapi.ApplyRequest{Prune: true}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty apply with prune: got %v, want InvalidArgument", err)
	}
}

func TestManifests_DiffSpec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newManifests(t)
	// Against nothing in force: the whole manifest is added and, with no
	// image on the node, a pull is planned.
	d, err := s.Diff(ctx, &manifestsapi.DiffRequest{Data: []byte(imageYAML), File: "i.yaml", Dir: "/m"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Diffs) != 1 || !strings.Contains(d.Diffs[0].Diff, "+  ref: example.local/busybox:latest") {
		t.Fatalf("diff: %+v", d.Diffs)
	}
	if a := d.Diffs[0].Actions; len(a) != 1 || a[0].Verb != "pull" {
		t.Errorf("actions: got %v, want one pull", a)
	}
	if _, err := s.Apply(ctx, &manifestsapi.ApplyRequest{Data: []byte(imageYAML), File: "i.yaml", Dir: "/m"}); err != nil {
		t.Fatal(err)
	}
	d, err = s.Diff(ctx, &manifestsapi.DiffRequest{Data: []byte(imageYAML), File: "i.yaml", Dir: "/m"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Diffs[0].Diff != "" {
		t.Errorf("same spec: got diff %q", d.Diffs[0].Diff)
	}
	changed := strings.Replace(imageYAML, "busybox:latest", "busybox:1.36", 1)
	d, err = s.Diff(ctx, &manifestsapi.DiffRequest{Data: []byte(changed), File: "i.yaml", Dir: "/m"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Diffs[0].Diff, "-  ref: example.local/busybox:latest\n+  ref: example.local/busybox:1.36") {
		t.Errorf("diff: %s", d.Diffs[0].Diff)
	}
}

func TestParseKind(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]spec.Kind{"TASKS": spec.KindTask, "image": spec.KindImage, "Containers": spec.KindContainer, "networks": spec.KindNetwork, "net": spec.KindNetwork, "all": ""} {
		if got, err := ParseKind(in); err != nil || got != want {
			t.Errorf("ParseKind(%q): got %q, %v, want %q", in, got, err, want)
		}
	}
	if _, err := ParseKind("pods"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ParseKind(pods): got %v, want InvalidArgument", err)
	}
}
