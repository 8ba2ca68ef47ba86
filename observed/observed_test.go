package observed

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T) *DB {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	d, err := New(bdb)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDB_Namespaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openDB(t)
	if _, err := d.GetNamespace(ctx, "default"); err != nil {
		t.Fatalf("default namespace: %v", err)
	}
	if _, err := d.CreateNamespace(ctx, Namespace{Name: "Bad_Name"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("create bad name: got %v, want invalid argument", err)
	}
	if _, err := d.CreateNamespace(ctx, Namespace{Name: "edge"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateNamespace(ctx, Namespace{Name: "edge"}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("create twice: got %v, want already exists", err)
	}
	img := Image{Name: "busybox", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("x"), Size: 1}}
	if _, _, err := d.PutImage(ctx, "nowhere", img); !errdefs.IsNotFound(err) {
		t.Fatalf("put image in unknown namespace: got %v, want not found", err)
	}
	if _, created, err := d.PutImage(ctx, "edge", img); err != nil || !created {
		t.Fatalf("put image: created=%v err=%v", created, err)
	}
	if err := d.DeleteNamespace(ctx, "edge"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("delete non-empty namespace: got %v, want failed precondition", err)
	}
	if err := d.DeleteImage(ctx, "edge", "busybox"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteNamespace(ctx, "edge"); err != nil {
		t.Fatalf("delete empty namespace: %v", err)
	}
	if err := d.DeleteNamespace(ctx, "default"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("delete default: got %v", err)
	}
	nss, err := d.ListNamespaces(ctx)
	if err != nil || len(nss) != 1 || nss[0].Name != "default" {
		t.Fatalf("list: got %v %v, want [default]", nss, err)
	}
}

func TestDB_PutImage_KeepsCreatedAndUnpacked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openDB(t)
	img := Image{Name: "a", Target: ocispec.Descriptor{Digest: digest.FromString("1")}}
	first, _, _ := d.PutImage(ctx, "default", img)
	if err := d.SetImageUnpacked(ctx, "default", "a", "overlayfs", "sha256:abc"); err != nil {
		t.Fatal(err)
	}
	second, created, err := d.PutImage(ctx, "default", img)
	if err != nil || created {
		t.Fatalf("re-put: created=%v err=%v", created, err)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) || second.Unpacked["overlayfs"] != "sha256:abc" {
		t.Fatalf("re-put lost fields: %+v", second)
	}
	img.Target.Digest = digest.FromString("2")
	third, _, _ := d.PutImage(ctx, "default", img)
	if len(third.Unpacked) != 0 {
		t.Fatalf("new target kept old unpacked state: %+v", third.Unpacked)
	}
}

func TestFilter_Match(t *testing.T) {
	t.Parallel()
	ev := Event{Topic: "/tasks/exit", Namespace: "edge", Payload: []byte(`{"id":"web","exitStatus":137}`)}
	tests := []struct {
		filters []string
		want    bool
	}{
		{nil, true},
		{[]string{"topic==/tasks/exit"}, true},
		{[]string{"topic==/tasks/start"}, false},
		{[]string{"topic~=/tasks/"}, true},
		{[]string{"topic~=^/images/"}, false},
		{[]string{"namespace==edge,topic==/tasks/exit"}, true},
		{[]string{"namespace==default,topic==/tasks/exit"}, false},
		{[]string{"namespace==default", "topic==/tasks/exit"}, true},
		{[]string{"namespace!=edge"}, false},
		{[]string{"event.id==web"}, true},
		{[]string{"event.exitStatus==137"}, true},
	}
	for _, tt := range tests {
		f, err := ParseFilters(tt.filters...)
		if err != nil {
			t.Fatalf("%v: %v", tt.filters, err)
		}
		if got := f.Match(ev); got != tt.want {
			t.Errorf("%v: got %v, want %v", tt.filters, got, tt.want)
		}
	}
	for _, bad := range []string{"topic", "color==red", "topic~=("} {
		if _, err := ParseFilters(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: got %v, want invalid argument", bad, err)
		}
	}
}

func TestBus_SlowSubscriberNeverBlocks(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := NewBus()
	slow := b.Subscribe(ctx, nil)
	f, _ := ParseFilters("topic==/tasks/exit")
	fast := b.Subscribe(ctx, f)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 3*subscriberQueue; i++ {
			b.Publish(ctx, "default", "/tasks/start", nil)
		}
		b.Publish(ctx, "default", "/tasks/exit", map[string]int{"n": 1})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publish blocked on a subscriber that does not read")
	}
	// The slow one also misses the final exit event.
	if got := b.Dropped(); got != 2*subscriberQueue+1 {
		t.Errorf("dropped: got %d, want %d", got, 2*subscriberQueue+1)
	}
	ev := <-fast
	if ev.Topic != "/tasks/exit" || string(ev.Payload) != `{"n":1}` {
		t.Errorf("filtered subscriber got %+v", ev)
	}
	if len(slow) != subscriberQueue {
		t.Errorf("slow queue: got %d, want %d", len(slow), subscriberQueue)
	}
}

func TestDB_Statuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := openDB(t)
	k := spec.Key{Namespace: "edge", Kind: spec.KindTask, Name: "web"}
	if _, err := d.GetStatus(ctx, k); !errdefs.IsNotFound(err) {
		t.Fatalf("get before put: %v", err)
	}
	st := ObjectStatus{Key: k, SpecHash: "h1", Status: spec.Status{ObservedGeneration: 2, TaskStatus: &spec.TaskStatus{Pid: 42, State: "running"}}}
	if err := d.PutStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	got, err := d.GetStatus(ctx, k)
	if err != nil || got.Status.TaskStatus == nil || got.Status.TaskStatus.Pid != 42 {
		t.Fatalf("get: %+v %v", got, err)
	}
	all, _ := d.ListStatuses(ctx, "", "")
	if len(all) != 1 {
		t.Fatalf("list: %d", len(all))
	}
	if err := d.DeleteStatus(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteNamespace(ctx, "edge"); err != nil {
		t.Fatalf("namespace with no statuses left should delete: %v", err)
	}
}

func TestRecent_KeepsLastN(t *testing.T) {
	t.Parallel()
	r := NewRecent(3)
	for i := 0; i < 5; i++ {
		r.Add(Event{Topic: fmt.Sprint(i)})
	}
	got := r.Match(nil)
	if len(got) != 3 || got[0].Topic != "2" || got[2].Topic != "4" {
		t.Fatalf("got %+v, want topics 2,3,4", got)
	}
}
