package desired

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"berth.dev/berth/spec"
)

func task(name, container string) spec.Object {
	return spec.Object{APIVersion: spec.APIVersion, Kind: spec.KindTask,
		Metadata: spec.Metadata{Name: name}, Spec: spec.TaskSpec{Container: container}}
}

func key(name string) spec.Key {
	return spec.Key{Namespace: "default", Kind: spec.KindTask, Name: name}
}

func TestStore_ReplaceSource(t *testing.T) {
	t.Parallel()
	s := NewStore()
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "c1")}, nil)
	e, ok := s.Get(key("web"))
	if !ok || e.Generation != 1 || e.Source != "a.yaml" {
		t.Fatalf("got %+v, %v", e, ok)
	}
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "c1")}, nil)
	if e, _ := s.Get(key("web")); e.Generation != 1 {
		t.Errorf("generation %d after an identical replace, want 1", e.Generation)
	}
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "c2")}, nil)
	if e, _ := s.Get(key("web")); e.Generation != 2 {
		t.Errorf("generation %d after a spec change, want 2", e.Generation)
	}
	s.ReplaceSource("a.yaml", nil, errors.New("broken"))
	if _, ok := s.Get(key("web")); !ok {
		t.Error("a failing source lost its objects")
	}
	if st := s.Sources(); len(st) != 1 || st[0].Err == nil {
		t.Errorf("sources = %+v, want the error reported", st)
	}
	// An invalid object fails the whole source the same way.
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "")}, nil)
	if e, _ := s.Get(key("web")); e.Generation != 2 {
		t.Errorf("an invalid set replaced the good one: %+v", e)
	}
	s.ReplaceSource("a.yaml", nil, nil)
	if _, ok := s.Get(key("web")); ok {
		t.Error("object still in force after its source dropped it")
	}
}

func TestStore_Conflict(t *testing.T) {
	t.Parallel()
	s := NewStore()
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "c1")}, nil)
	s.ReplaceSource("b.yaml", []spec.Object{task("web", "c2")}, nil)
	for range 3 { // re-reads of either file never move ownership
		s.ReplaceSource("b.yaml", []spec.Object{task("web", "c2")}, nil)
		s.ReplaceSource("a.yaml", []spec.Object{task("web", "c1")}, nil)
		e, _ := s.Get(key("web"))
		if e.Source != "a.yaml" || e.Generation != 1 {
			t.Fatalf("entry %+v, want a.yaml generation 1", e)
		}
		cs := s.Conflicts()
		if len(cs) != 1 || cs[0].Owner != "a.yaml" || cs[0].Source != "b.yaml" {
			t.Fatalf("conflicts %v", cs)
		}
	}
	s.ReplaceSource("a.yaml", nil, nil)
	e, _ := s.Get(key("web"))
	if e.Source != "b.yaml" || e.Generation != 2 {
		t.Errorf("after the owner dropped it: %+v, want b.yaml generation 2", e)
	}
	if cs := s.Conflicts(); len(cs) != 0 {
		t.Errorf("conflicts %v, want none", cs)
	}
}

func TestStore_MoveBetweenSources(t *testing.T) {
	t.Parallel()
	s := NewStore()
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "c1")}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keys := s.Subscribe(ctx)
	s.Update(SourceUpdate{Source: "a.yaml"}, SourceUpdate{Source: "b.yaml", Objects: []spec.Object{task("web", "c1")}})
	e, ok := s.Get(key("web"))
	if !ok || e.Source != "b.yaml" || e.Generation != 1 {
		t.Errorf("moved object: %+v, %v; want b.yaml generation 1", e, ok)
	}
	if k := <-keys; k != key("web") {
		t.Errorf("notified %v", k)
	}
}

func TestStore_SubscribeCoalesces(t *testing.T) {
	t.Parallel()
	s := NewStore()
	ctx, cancel := context.WithCancel(context.Background())
	keys := s.Subscribe(ctx)
	done := make(chan struct{})
	go func() { // nobody reads: the store must not block
		for i := range 10000 {
			s.ReplaceSource("a.yaml", []spec.Object{task("web", fmt.Sprintf("c%d", i)), task("db", "c")}, nil)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the store blocked on a slow subscriber")
	}
	got := map[spec.Key]int{}
	for len(got) < 2 {
		got[<-keys]++
	}
	select {
	case k := <-keys:
		t.Errorf("extra notification %v after coalescing", k)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	for range keys { // closed on cancel
	}
}

func TestStore_Synced(t *testing.T) {
	t.Parallel()
	s := NewStore()
	s.Expect("dir")
	if s.Synced() {
		t.Fatal("synced before the source read")
	}
	s.MarkSynced("dir")
	if !s.Synced() {
		t.Fatal("not synced after the source read")
	}
}

func TestStore_SourcesChanged(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewStore()
	ch := s.SourcesChanged(ctx)
	s.ReplaceSource("a.yaml", nil, errors.New("document 1: broken"))
	s.ReplaceSource("b.yaml", []spec.Object{task("web", "c")}, nil)
	select {
	case <-ch:
	default:
		t.Fatal("no signal after two source updates")
	}
	select {
	case <-ch:
		t.Fatal("two updates before a read should signal once")
	default:
	}
}

func TestStore_WhenSynced(t *testing.T) {
	s := NewStore()
	select {
	case <-s.WhenSynced():
	default:
		t.Fatal("a store with no sources is not signalled as synced")
	}
	s.Expect("dir")
	s.Expect("api")
	ch := s.WhenSynced()
	s.MarkSynced("dir")
	select {
	case <-ch:
		t.Fatal("signalled synced while a source has not read")
	default:
	}
	s.MarkSynced("api")
	select {
	case <-ch:
	default:
		t.Fatal("not signalled once every source read")
	}
}

func TestStore_Watch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := NewStore()
	var got []spec.Key
	s.Watch(ctx, func(keys []spec.Key) {
		got = append(got, keys...) // the updates below are sequential
		s.List(Filter{})           // the store's lock is not held
	})
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "c")}, nil)
	s.ReplaceSource("a.yaml", []spec.Object{task("web", "c")}, nil) // no change: no call
	s.RemoveSource("a.yaml")
	want := spec.Key{Namespace: spec.DefaultNamespace, Kind: spec.KindTask, Name: "web"}
	if len(got) != 2 || got[0] != want || got[1] != want {
		t.Fatalf("watch got %v, want %v twice (created, deleted)", got, want)
	}
	cancel()
}

// The store resolves the node's configured defaults into what it holds,
// once, and keeps the hash a node configured as before always had.
func TestStore_NodeDefaults(t *testing.T) {
	ctr := spec.Object{APIVersion: spec.APIVersion, Kind: spec.KindContainer, Metadata: spec.Metadata{Name: "web"},
		Spec: spec.ContainerSpec{Image: "busybox"}}
	key := spec.Key{Namespace: spec.DefaultNamespace, Kind: spec.KindContainer, Name: "web"}
	explicit := ctr.DeepCopy()
	cs := explicit.Spec.(spec.ContainerSpec)
	cs.Runtime = "runc"
	explicit.Spec = cs
	for _, tc := range []struct {
		d        spec.NodeDefaults
		runtime  string
		sameHash bool
	}{
		{spec.NodeDefaults{}, "runc", true},
		{spec.NodeDefaults{Snapshotter: "overlayfs", Runtime: "runc"}, "runc", true},
		{spec.NodeDefaults{Runtime: "crun"}, "crun", false},
	} {
		s := NewStore()
		s.SetDefaults(tc.d)
		s.ReplaceSource("c.yaml", []spec.Object{ctr}, nil)
		e, ok := s.Get(key)
		if !ok {
			t.Fatalf("%+v: %s not stored: %v", tc.d, key, s.Sources())
		}
		if got := e.Object.Spec.(spec.ContainerSpec).Runtime; got != tc.runtime {
			t.Errorf("%+v: runtime %q, want %q", tc.d, got, tc.runtime)
		}
		if same := e.Hash == spec.Hash(explicit); same != tc.sameHash {
			t.Errorf("%+v: hash equal to the runc-explicit one: %v, want %v", tc.d, same, tc.sameHash)
		}
		if r := s.Resolve(ctr); spec.Hash(r) != e.Hash {
			t.Errorf("%+v: Resolve hashes %s, the entry %s (diff would disagree)", tc.d, spec.Hash(r), e.Hash)
		}
	}
}
