package desired

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/spec"
)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func actions(rs []Result) map[string]Action {
	m := map[string]Action{}
	for _, r := range rs {
		m[r.Key.Name] = r.Action
	}
	return m
}

// everything is a selector every test object matches.
var everything = spec.Selector{{Key: "unused.example/none", Op: "!exists"}}

func TestAPISource_ApplyDeletePersist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openDB(t, path)
	s := NewStore()
	a, err := OpenAPISource(db, s)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := a.Apply(ctx, []spec.Object{task("a", "c"), task("b", "c")}, ApplyOptions{Manager: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]Action{"a": Created, "b": Created}, actions(rs)); diff != "" {
		t.Errorf("first apply (-want +got):\n%s", diff)
	}
	rs, _ = a.Apply(ctx, []spec.Object{task("a", "c"), task("b", "d")}, ApplyOptions{Manager: "cli"})
	if diff := cmp.Diff(map[string]Action{"a": Unchanged, "b": Configured}, actions(rs)); diff != "" {
		t.Errorf("second apply (-want +got):\n%s", diff)
	}
	// Dry run with prune: reports, stores nothing.
	rs, _ = a.Apply(ctx, []spec.Object{task("a", "c")}, ApplyOptions{Manager: "cli", Prune: true, DryRun: true, Selector: everything})
	if diff := cmp.Diff(map[string]Action{"a": Unchanged, "b": Pruned}, actions(rs)); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if _, ok := s.Get(key("b")); !ok {
		t.Error("a dry run pruned")
	}
	// A key owned by a manifest file is a conflict and is not stored.
	s.ReplaceSource("/etc/berth/manifests/x.yaml", []spec.Object{task("filed", "c")}, nil)
	rs, _ = a.Apply(ctx, []spec.Object{task("filed", "z")}, ApplyOptions{Manager: "cli"})
	if rs[0].Action != Conflicted {
		t.Errorf("apply over a file's object: %+v", rs[0])
	}
	// Invalid input applies nothing.
	if _, err := a.Apply(ctx, []spec.Object{task("c", "c"), task("Bad", "c")}, ApplyOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("invalid apply: %v", err)
	}
	rs, _ = a.Delete(ctx, []spec.Key{key("a"), key("nope")})
	if diff := cmp.Diff(map[string]Action{"a": Deleted, "nope": NotFound}, actions(rs)); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
	db.Close()

	// Reopen: what was applied is back, in a fresh store.
	db = openDB(t, path)
	defer db.Close()
	s2 := NewStore()
	if _, err := OpenAPISource(db, s2); err != nil {
		t.Fatal(err)
	}
	if got := names(s2); got != "b" {
		t.Errorf("after reopen: %q, want b", got)
	}
	if e, _ := s2.Get(key("b")); e.Source != SourceAPI || e.Object.Spec.(spec.TaskSpec).Container != "d" {
		t.Errorf("after reopen: %+v", e)
	}
}

func TestAPISource_PruneStaysInTheNamespacesNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, err := OpenAPISource(openDB(t, filepath.Join(t.TempDir(), "meta.db")), NewStore())
	if err != nil {
		t.Fatal(err)
	}
	inNS := func(ns, name string) spec.Object {
		o := task(name, "c")
		o.Metadata.Namespace = ns
		return o
	}
	if _, err := a.Apply(ctx, []spec.Object{inNS("team-a", "a1"), inNS("team-a", "a2"), inNS("team-b", "b1")}, ApplyOptions{Manager: "cli"}); err != nil {
		t.Fatal(err)
	}
	rs, err := a.Apply(ctx, []spec.Object{inNS("team-a", "a1")}, ApplyOptions{Manager: "cli", Prune: true, Selector: everything})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]Action{"a1": Unchanged, "a2": Pruned}, actions(rs)); diff != "" {
		t.Errorf("prune (-want +got):\n%s", diff)
	}
}

func TestAPISource_ApplySets(t *testing.T) {
	ctx := context.Background()
	s := NewStore()
	a, err := OpenAPISource(openDB(t, filepath.Join(t.TempDir(), "meta.db")), s)
	if err != nil {
		t.Fatal(err)
	}
	labelled := func(name, app string) spec.Object {
		o := task(name, "c")
		o.Metadata.Labels = map[string]string{"app": app}
		return o
	}
	one := ApplyOptions{Manager: "cli", ApplySet: "one"}
	two := ApplyOptions{Manager: "cli", ApplySet: "two"}
	if _, err := a.Apply(ctx, []spec.Object{labelled("a1", "x"), labelled("a2", "x")}, one); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, []spec.Object{labelled("b1", "y")}, two); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Get(key("a1")); e.Object.Metadata.Labels[spec.LabelApplySet] != "one" || e.Object.Metadata.Labels["app"] != "x" {
		t.Errorf("a1 labels %v: want the apply set recorded beside its own", e.Object.Metadata.Labels)
	}
	for _, tc := range []struct {
		name string
		objs []spec.Object
		opts ApplyOptions
		want map[string]Action
	}{
		{"prune of one leaves two", []spec.Object{labelled("a1", "x")}, with(one, true, ""), map[string]Action{"a1": Unchanged, "a2": Pruned}},
		{"prune of two leaves one", []spec.Object{labelled("b2", "y")}, with(two, true, ""), map[string]Action{"b1": Pruned, "b2": Created}},
		{"another set's object is not taken over", []spec.Object{labelled("a1", "x")}, with(two, false, ""), map[string]Action{"a1": Conflicted}},
		{"selector scope", []spec.Object{labelled("c1", "z")}, with(ApplyOptions{Manager: "cli"}, true, "app=x"), map[string]Action{"c1": Created, "a1": Pruned, "a2": Pruned}},
		{"selector within a set", []spec.Object{labelled("c1", "z")}, with(one, true, "app=z"), map[string]Action{"c1": Created}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.DryRun = true
			rs, err := a.Apply(ctx, tc.objs, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, actions(rs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := a.Apply(ctx, []spec.Object{labelled("a1", "x")}, ApplyOptions{Manager: "cli", Prune: true}); !errors.Is(err, ErrPruneUnscoped) {
		t.Errorf("prune without a scope: %v, want ErrPruneUnscoped", err)
	}
}

func with(o ApplyOptions, prune bool, selector string) ApplyOptions {
	o.Prune = prune
	o.Selector, _ = spec.ParseSelector(selector)
	return o
}
