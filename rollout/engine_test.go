package rollout

import (
	"context"
	"log/slog"
	"path/filepath"
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
