package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/content/local"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/observed"
	"berth.dev/berth/oci"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/overlay"
	"berth.dev/berth/spec"
	bolt "go.etcd.io/bbolt"
)

// recorder is an event publisher that remembers what it was given.
type recorder struct {
	mu     sync.Mutex
	events []recorded
}

type recorded struct {
	ns, topic string
	payload   map[string]any
}

func (r *recorder) Publish(_ context.Context, ns, topic string, payload any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, _ := payload.(map[string]any)
	r.events = append(r.events, recorded{ns, topic, p})
}

// count counts the events of topic whose payload matches key=value (any
// value when key is "").
func (r *recorder) count(topic, key string, value any) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := 0
	for _, e := range r.events {
		if e.topic == topic && (key == "" || fmt.Sprint(e.payload[key]) == fmt.Sprint(value)) {
			c++
		}
	}
	return c
}

var _ observed.Publisher = (*recorder)(nil)

// testNode is a node over real stores in a temporary directory, with the
// busybox test image imported as "busybox:latest" in the default
// namespace. It needs root, runc, overlayfs and make build's berth-shim.
func testNode(t *testing.T) (*Node, *recorder) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	images := testutil.TestImages(t, "busybox")
	shimBin := testutil.Bin(t, "berth-shim")
	dir := t.TempDir()
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	for _, d := range []string{root, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bdb, err := bolt.Open(filepath.Join(root, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := observed.New(bdb)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := overlay.New(filepath.Join(root, "snapshots", "overlayfs"))
	if err != nil {
		testutil.Missing(t, "overlayfs: %v", err)
	}
	rec := &recorder{}
	n := New(Options{
		Content: cs, Snapshotters: map[string]snapshot.Snapshotter{"overlayfs": sn},
		DB: db, Events: rec, Log: slog.New(slog.DiscardHandler),
		Tasks: TaskOptions{State: state, Root: root, ShimBinary: shimBin},
	})
	t.Cleanup(func() {
		ctx := context.Background()
		for _, tk := range n.tasks().list("") {
			_, _ = n.DeleteTask(ctx, tk.ns, tk.id, true)
		}
		n.CloseTasks()
		_ = snapshot.UnmountAll(filepath.Join(state, ".tmp"))
		sn.Close()
		cs.Close()
		bdb.Close()
	})
	if _, err := n.Import(context.Background(), spec.DefaultNamespace, filepath.Join(images, "busybox"), ImportOptions{Name: "busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	return n, rec
}

// runSleeper creates container id running sleep and starts its task.
func runSleeper(t *testing.T, n *Node, id string) {
	t.Helper()
	ctx := context.Background()
	s := ContainerSettings{Settings: oci.Settings{Args: []string{"sleep", "1000"}}}
	if _, err := n.CreateContainer(ctx, spec.DefaultNamespace, id, "busybox:latest", "", s, nil); err != nil {
		t.Fatal(err)
	}
	startTask(t, n, id)
}

func startTask(t *testing.T, n *Node, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := n.CreateTask(ctx, spec.DefaultNamespace, id, Stdio{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.StartTask(ctx, spec.DefaultNamespace, id, ""); err != nil {
		t.Fatal(err)
	}
}

// mounted reports whether path is a mount point in this mount namespace.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	mps, err := snapshot.MountPoints()
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(mps, path)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
