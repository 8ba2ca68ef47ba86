package desired

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"

	"berth.dev/berth/spec"
)

func TestRevisions_BeginFinishHistoryTrim(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openDB(t, path)
	rs, err := OpenRevisions(db, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rs.Current("app"); ok {
		t.Fatal("a new set has a current revision")
	}
	objs := []spec.Object{task("a", "c")}
	r1, err := rs.Begin(RolloutRevision{Set: "app", Hash: ObjectsHash(objs), Source: "/srv/app", Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Number != 1 || r1.State != RevisionPending {
		t.Fatalf("first revision: %+v", r1)
	}
	// One rollout at a time per set; another set is independent.
	if _, err := rs.Begin(RolloutRevision{Set: "app", Objects: objs}); !errors.Is(err, ErrRolloutInProgress) {
		t.Errorf("second Begin while pending: %v", err)
	}
	if _, err := rs.Begin(RolloutRevision{Set: "other", Objects: objs}); err != nil {
		t.Errorf("Begin of another set: %v", err)
	}
	if p, ok := rs.Pending("app"); !ok || p.Number != 1 {
		t.Errorf("pending: %+v %v", p, ok)
	}
	if _, err := rs.Finish("app", 1, RevisionReady, ""); err != nil {
		t.Fatal(err)
	}
	if c, ok := rs.Current("app"); !ok || c.Number != 1 || c.State != RevisionReady || c.Prior != nil {
		t.Errorf("current after Ready: %+v %v", c, ok)
	}
	// A failed revision leaves the current one in force.
	r2, _ := rs.Begin(RolloutRevision{Set: "app", Objects: []spec.Object{task("a", "d")}})
	if _, err := rs.Finish("app", r2.Number, RevisionFailed, "Task default/a: BackOff"); err != nil {
		t.Fatal(err)
	}
	if c, _ := rs.Current("app"); c.Number != 1 {
		t.Errorf("current after a failure: %d, want 1", c.Number)
	}
	if _, err := rs.Finish("app", r2.Number, RevisionReady, ""); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Finish of a finished revision: %v", err)
	}
	// Keep 3: revisions 1 (current) survives the trim, the oldest other goes.
	for i := 0; i < 3; i++ {
		r, err := rs.Begin(RolloutRevision{Set: "app", Objects: objs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Finish("app", r.Number, RevisionFailed, "x"); err != nil {
			t.Fatal(err)
		}
	}
	hist, err := rs.History("app")
	if err != nil {
		t.Fatal(err)
	}
	var nums []int64
	for _, r := range hist {
		nums = append(nums, r.Number)
	}
	if len(nums) != 3 || nums[0] != 1 || nums[2] != 5 {
		t.Errorf("history after trim: %v, want [1 4 5]", nums)
	}
	// Persisted: a reopened store sees the same.
	db.Close()
	db = openDB(t, path)
	defer db.Close()
	rs, _ = OpenRevisions(db, 3)
	if c, ok := rs.Current("app"); !ok || c.Number != 1 || len(c.Objects) != 1 || c.Objects[0].Metadata.Name != "a" {
		t.Errorf("current after reopen: %+v", c)
	}
	if got := rs.Sets(); len(got) != 2 || got[0] != "app" {
		t.Errorf("sets: %v", got)
	}
}

func TestRevisions_PreviousSkipsFailedAndSameHash(t *testing.T) {
	t.Parallel()
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	defer db.Close()
	rs, _ := OpenRevisions(db, 0)
	step := func(objs []spec.Object, state string) {
		r, err := rs.Begin(RolloutRevision{Set: "s", Hash: ObjectsHash(objs), Objects: objs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rs.Finish("s", r.Number, state, ""); err != nil {
			t.Fatal(err)
		}
	}
	a, b := []spec.Object{task("a", "1")}, []spec.Object{task("a", "2")}
	step(a, RevisionReady)  // 1
	step(b, RevisionFailed) // 2
	step(b, RevisionReady)  // 3
	step(b, RevisionReady)  // 4: the same set again
	p, ok := rs.Previous("s")
	if !ok || p.Number != 1 {
		t.Errorf("previous: %+v %v, want revision 1", p, ok)
	}
	if ObjectsHash(a) == ObjectsHash(b) || ObjectsHash(a) != ObjectsHash([]spec.Object{task("a", "1")}) {
		t.Error("ObjectsHash does not follow the spec")
	}
}

func TestAPISource_SaveRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openDB(t, path)
	s := NewStore()
	a, err := OpenAPISource(db, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, []spec.Object{task("a", "c1"), task("b", "c1")}, ApplyOptions{Manager: "m", ApplySet: "set"}); err != nil {
		t.Fatal(err)
	}
	saved, err := a.Save([]spec.Key{key("a"), key("b"), key("new")})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(a.Members("set")); got != 2 {
		t.Errorf("members: %d, want 2", got)
	}
	// The new revision changes a, prunes b, adds new.
	if _, err := a.Apply(ctx, []spec.Object{task("a", "c2"), task("new", "c2")}, ApplyOptions{Manager: "m", ApplySet: "set", Prune: true}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Get(key("a"))
	for range 2 { // idempotent
		if err := a.Restore(saved); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *Store) {
		t.Helper()
		e, ok := s.Get(key("a"))
		if ts, _ := e.Object.TaskSpec(); !ok || ts.Container != "c1" {
			t.Errorf("a after restore: %+v", e.Object.Spec)
		}
		if e.Hash == before.Hash {
			t.Error("a's hash did not change back")
		}
		if _, ok := s.Get(key("b")); !ok {
			t.Error("b not restored")
		}
		if _, ok := s.Get(key("new")); ok {
			t.Error("new still in force")
		}
	}
	check(s)
	db.Close()
	db = openDB(t, path)
	defer db.Close()
	s2 := NewStore()
	if _, err := OpenAPISource(db, s2); err != nil {
		t.Fatal(err)
	}
	check(s2)
}

func TestRevisions_Seen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openDB(t, path)
	rs, _ := OpenRevisions(db, 0)
	if got := rs.Seen("/etc/berth/manifests"); got != "" {
		t.Errorf("seen of a new set: %q", got)
	}
	r, _ := rs.Begin(RolloutRevision{Set: "/etc/berth/manifests", Directory: true})
	if err := rs.MarkSeen("/etc/berth/manifests", "sha256:aa"); err != nil {
		t.Fatal(err)
	}
	// Marking keeps the pointers.
	if p, ok := rs.Pending("/etc/berth/manifests"); !ok || p.Number != r.Number {
		t.Errorf("pending after MarkSeen: %+v %v", p, ok)
	}
	db.Close()
	db = openDB(t, path)
	defer db.Close()
	rs, _ = OpenRevisions(db, 0)
	if got := rs.Seen("/etc/berth/manifests"); got != "sha256:aa" {
		t.Errorf("seen after reopen: %q", got)
	}
}
