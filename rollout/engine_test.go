package rollout

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/node/nodetest"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
)

// gatedPull is the fake node with a Pull that waits for the test.
type gatedPull struct {
	*nodetest.Node
	pulling chan struct{}
	release chan struct{}
}

func (g *gatedPull) Pull(ctx context.Context, ns, ref string, o node.PullOptions) (observed.Image, error) {
	close(g.pulling)
	<-g.release
	return g.Node.Pull(ctx, ns, ref, o)
}

func parseOne(t *testing.T, y string) spec.Object {
	t.Helper()
	objs, err := spec.Parse("t.yaml", []byte(y))
	if err != nil || len(objs) != 1 {
		t.Fatalf("parse: %v (%d objects)", err, len(objs))
	}
	return spec.Default(objs[0])
}

// A member an ordinary apply adds to the set while a rollout of the set
// fetches its images is not the rollout's to prune, and its rollback must
// not lose it: the rollout saved the set's members before that apply.
func TestEngine_Apply_ConcurrentMemberSurvivesRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store := desired.NewStore()
	api, err := desired.OpenAPISource(db, store)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := desired.OpenRevisions(db, 0)
	if err != nil {
		t.Fatal(err)
	}
	odb, err := observed.New(db)
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedPull{Node: nodetest.New(odb), pulling: make(chan struct{}), release: make(chan struct{})}
	e := New(Options{Desired: store, API: api, Revisions: revs, DB: odb, Node: g, Log: slog.New(slog.DiscardHandler),
		Manager: "berth-cli", Ready: func(context.Context, spec.Key) Readiness {
			return Readiness{Reason: "BackOff", Failed: true, Since: time.Now()}
		}})
	t.Cleanup(e.Stop)

	img := parseOne(t, "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: app}\nspec: {ref: example.com/app:1}\n")
	user := parseOne(t, "apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: users}\nspec: {ref: example.com/users:1}\n")
	done := make(chan Outcome, 1)
	go func() {
		out, err := e.Apply(ctx, Request{Set: "s", Objects: []spec.Object{img}, Timeout: time.Second, MinReady: time.Millisecond})
		if err != nil {
			t.Errorf("apply: %v", err)
		}
		done <- out
	}()
	<-g.pulling
	if _, err := api.Apply(ctx, []spec.Object{user}, desired.ApplyOptions{Manager: "berth-cli", ApplySet: "s"}); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	out := <-done
	if !out.Failed {
		t.Fatalf("got a rollout that did not fail: %+v", out)
	}
	saved, err := api.Save([]spec.Key{user.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if saved[0].Absent {
		t.Errorf("got %s gone after the rollback, want it kept: applied by a user while the rollout fetched", user.Key())
	}
}

// newEngine is an engine over in-process stores with the fake node and
// ready as its readiness.
func newEngine(t *testing.T, n node.Images, ready func(context.Context, spec.Key) Readiness) (*Engine, *desired.APISource, *desired.Revisions) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store := desired.NewStore()
	api, err := desired.OpenAPISource(db, store)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := desired.OpenRevisions(db, 0)
	if err != nil {
		t.Fatal(err)
	}
	odb, err := observed.New(db)
	if err != nil {
		t.Fatal(err)
	}
	if n == nil {
		n = nodetest.New(odb)
	}
	e := New(Options{Desired: store, API: api, Revisions: revs, DB: odb, Node: n, Log: slog.New(slog.DiscardHandler),
		Manager: "berth-cli", Ready: ready})
	t.Cleanup(e.Stop)
	return e, api, revs
}

// A key a user applies (or deletes) while the rollout waits for Ready is
// the user's: the rollback puts back only what the rollout itself changed.
func TestEngine_Apply_RollbackKeepsUsersLaterApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	applied := make(chan struct{})
	var once sync.Once
	e, api, _ := newEngine(t, nil, func(context.Context, spec.Key) Readiness {
		once.Do(func() { close(applied) })
		return Readiness{Reason: "Pulling"}
	})
	net1 := parseOne(t, "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: n1}\nspec: {subnet: 10.88.1.0/24}\n")
	net2 := parseOne(t, "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: n2}\nspec: {subnet: 10.88.2.0/24}\n")
	done := make(chan Outcome, 1)
	go func() {
		out, err := e.Apply(ctx, Request{Set: "s", Objects: []spec.Object{net1, net2}, Timeout: 500 * time.Millisecond, MinReady: time.Millisecond})
		if err != nil {
			t.Errorf("apply: %v", err)
		}
		done <- out
	}()
	<-applied
	// The user changes n1 and deletes n2 while the rollout waits.
	users := parseOne(t, "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: n1}\nspec: {subnet: 10.88.9.0/24}\n")
	if _, err := api.Apply(ctx, []spec.Object{users}, desired.ApplyOptions{Manager: "berth-cli", ApplySet: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Delete(ctx, []spec.Key{net2.Key()}); err != nil {
		t.Fatal(err)
	}
	if out := <-done; !out.Failed {
		t.Fatalf("got a rollout that did not fail: %+v", out)
	}
	saved, err := api.Save([]spec.Key{net1.Key(), net2.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if saved[0].Absent || !strings.Contains(string(saved[0].Record), "10.88.9.0/24") {
		t.Errorf("got n1 %s after the rollback, want the user's apply (10.88.9.0/24) kept", saved[0].Record)
	}
	if !saved[1].Absent {
		t.Errorf("got n2 %s after the rollback, want it deleted as the user did", saved[1].Record)
	}
}

// A member the failed revision pruned is put back by the rollback.
func TestEngine_Apply_RollbackRestoresPruned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, api, _ := newEngine(t, nil, func(context.Context, spec.Key) Readiness {
		return Readiness{Reason: "BackOff", Failed: true, Since: time.Now()}
	})
	old := parseOne(t, "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: old}\nspec: {subnet: 10.88.3.0/24}\n")
	if _, err := api.Apply(ctx, []spec.Object{old}, desired.ApplyOptions{Manager: "berth-cli", ApplySet: "s"}); err != nil {
		t.Fatal(err)
	}
	net1 := parseOne(t, "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: n1}\nspec: {subnet: 10.88.1.0/24}\n")
	out, err := e.Apply(ctx, Request{Set: "s", Objects: []spec.Object{net1}, Timeout: time.Second, MinReady: time.Millisecond})
	if err != nil || !out.Failed {
		t.Fatalf("apply: %+v, %v; want a failed rollout", out, err)
	}
	saved, err := api.Save([]spec.Key{old.Key(), net1.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if saved[0].Absent {
		t.Error("got the pruned member gone after the rollback, want it back")
	}
	if !saved[1].Absent {
		t.Error("got the failed revision's object kept after the rollback")
	}
}

// A request whose client gave up while another rollout ran is not begun
// later: nobody waits for its outcome, and queued requests would pile up.
func TestEngine_Apply_CallerGoneBeforeItsTurn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, _, revs := newEngine(t, nil, func(context.Context, spec.Key) Readiness {
		return Readiness{Reason: "Pulling"}
	})
	net1 := parseOne(t, "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: n1}\nspec: {subnet: 10.88.1.0/24}\n")
	net2 := parseOne(t, "apiVersion: berth.dev/v1\nkind: Network\nmetadata: {name: n2}\nspec: {subnet: 10.88.2.0/24}\n")
	first := make(chan struct{})
	go func() {
		defer close(first)
		_, _ = e.Apply(ctx, Request{Set: "one", Objects: []spec.Object{net1}, Timeout: 500 * time.Millisecond, MinReady: time.Millisecond})
	}()
	for { // until the first holds the engine
		if _, ok := revs.Pending("one"); ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := e.Apply(short, Request{Set: "two", Objects: []spec.Object{net2}, Timeout: time.Second}); err == nil {
		t.Fatal("got the second apply done while the first ran, want the caller's timeout")
	}
	<-first
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if h, _ := revs.History("two"); len(h) > 0 {
			t.Fatalf("got revision %d of set two begun after its caller left", h[0].Number)
		}
	}
}
