// Package testsuite is the conformance suite every snapshot.Snapshotter
// implementation runs, as containerd's core/snapshots/testsuite does: the
// same lifecycle, error classes, chains, mounts and restart behaviour,
// checked against real mounts (it needs root).
package testsuite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/snapshot"
)

// Factory opens a snapshotter rooted at root. It is called again with the
// same root to test a restart.
type Factory func(t *testing.T, root string) (snapshot.Snapshotter, error)

// Run runs the suite against the snapshotters new builds.
func Run(t *testing.T, newSn Factory) {
	testutil.RequireRoot(t)
	tests := []struct {
		name string
		fn   func(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, root string)
	}{
		{"Lifecycle", testLifecycle},
		{"Errors", testErrors},
		{"RemoveWithChildren", testRemoveWithChildren},
		{"WalkStatUpdate", testWalkStatUpdate},
		{"Usage", testUsage},
		{"ViewIsReadOnly", testViewReadOnly},
		{"LongChain", testLongChain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "sn")
			sn, err := newSn(t, root)
			if err != nil {
				t.Fatalf("new snapshotter: %v", err)
			}
			t.Cleanup(func() { sn.Close() })
			tc.fn(t, context.Background(), sn, root)
		})
	}
	t.Run("Restart", func(t *testing.T) { testRestart(t, newSn) })
}

// withMounted mounts mounts on a fresh directory for the duration of fn.
func withMounted(t *testing.T, mounts []snapshot.Mount, fn func(dir string)) {
	t.Helper()
	dir := t.TempDir()
	if err := snapshot.MountAll(mounts, dir); err != nil {
		t.Fatalf("mount %+v: %v", mounts, err)
	}
	defer func() {
		if err := snapshot.UnmountAll(dir); err != nil {
			t.Errorf("unmount: %v", err)
		}
	}()
	fn(dir)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, path, content string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", path, err)
		return
	}
	if string(got) != content {
		t.Errorf("%s: got %q, want %q", path, got, content)
	}
}

// layer prepares key on parent, writes files through its mounts, commits
// it as name.
func layer(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, name, parent string, files map[string]string) {
	t.Helper()
	key := "active-" + name
	mounts, err := sn.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("prepare %s on %q: %v", key, parent, err)
	}
	withMounted(t, mounts, func(dir string) {
		for p, c := range files {
			writeFile(t, filepath.Join(dir, p), c)
		}
	})
	if err := sn.Commit(ctx, name, key); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

func testLifecycle(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, _ string) {
	layer(t, ctx, sn, "c1", "", map[string]string{"a.txt": "a", "dir/b.txt": "b"})
	info, err := sn.Stat(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshot.KindCommitted || info.Parent != "" {
		t.Errorf("stat c1: got kind %v parent %q, want Committed and no parent", info.Kind, info.Parent)
	}
	if _, err := sn.Stat(ctx, "active-c1"); !errdefs.IsNotFound(err) {
		t.Errorf("stat of committed active key: got %v, want NotFound", err)
	}
	layer(t, ctx, sn, "c2", "c1", map[string]string{"dir/c.txt": "c", "a.txt": "a2"})
	mounts, err := sn.View(ctx, "view", "c2")
	if err != nil {
		t.Fatal(err)
	}
	again, err := sn.Mounts(ctx, "view")
	if err != nil || !cmp.Equal(mounts, again) {
		t.Errorf("Mounts(view): got %+v, %v; want %+v", again, err, mounts)
	}
	withMounted(t, mounts, func(dir string) {
		wantFile(t, filepath.Join(dir, "a.txt"), "a2")
		wantFile(t, filepath.Join(dir, "dir/b.txt"), "b")
		wantFile(t, filepath.Join(dir, "dir/c.txt"), "c")
	})
	if info, _ := sn.Stat(ctx, "view"); info.Kind != snapshot.KindView || info.Parent != "c2" {
		t.Errorf("stat view: got %+v", info)
	}
	for _, k := range []string{"view", "c2", "c1"} {
		if err := sn.Remove(ctx, k); err != nil {
			t.Errorf("remove %s: %v", k, err)
		}
	}
	n := 0
	_ = sn.Walk(ctx, func(context.Context, snapshot.Info) error { n++; return nil })
	if n != 0 {
		t.Errorf("after removing all: %d snapshots remain", n)
	}
}

func testErrors(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, _ string) {
	layer(t, ctx, sn, "base", "", map[string]string{"f": "x"})
	if _, err := sn.Prepare(ctx, "act", "base"); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		err  error
		is   func(error) bool
	}{
		{"stat unknown", second(sn.Stat(ctx, "nope")), errdefs.IsNotFound},
		{"mounts unknown", second(sn.Mounts(ctx, "nope")), errdefs.IsNotFound},
		{"usage unknown", second(sn.Usage(ctx, "nope")), errdefs.IsNotFound},
		{"remove unknown", sn.Remove(ctx, "nope"), errdefs.IsNotFound},
		{"commit unknown", sn.Commit(ctx, "x", "nope"), errdefs.IsNotFound},
		{"prepare unknown parent", second(sn.Prepare(ctx, "p", "nope")), errdefs.IsNotFound},
		{"prepare existing key", second(sn.Prepare(ctx, "act", "")), errdefs.IsAlreadyExists},
		{"prepare on committed key name", second(sn.Prepare(ctx, "base", "")), errdefs.IsAlreadyExists},
		{"view existing key", second(sn.View(ctx, "act", "base")), errdefs.IsAlreadyExists},
		{"commit to existing name", sn.Commit(ctx, "base", "act"), errdefs.IsAlreadyExists},
		{"commit a committed", sn.Commit(ctx, "other", "base"), errdefs.IsFailedPrecondition},
		{"prepare on active parent", second(sn.Prepare(ctx, "p2", "act")), errdefs.IsInvalidArgument},
		{"update unknown", second(sn.Update(ctx, snapshot.Info{Name: "nope"})), errdefs.IsNotFound},
	}
	for _, c := range checks {
		if c.err == nil || !c.is(c.err) {
			t.Errorf("%s: got error %v, want its class", c.name, c.err)
		}
	}
	// A failed Prepare leaves nothing behind.
	if _, err := sn.Stat(ctx, "p"); !errdefs.IsNotFound(err) {
		t.Errorf("failed prepare left a snapshot: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func testRemoveWithChildren(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, _ string) {
	layer(t, ctx, sn, "p", "", map[string]string{"f": "x"})
	layer(t, ctx, sn, "c", "p", map[string]string{"g": "y"})
	if _, err := sn.View(ctx, "v", "c"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"p", "c"} {
		if err := sn.Remove(ctx, k); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("remove %s with children: got %v, want FailedPrecondition", k, err)
		}
	}
	for _, k := range []string{"v", "c", "p"} {
		if err := sn.Remove(ctx, k); err != nil {
			t.Errorf("remove %s: %v", k, err)
		}
	}
}

func walkNames(t *testing.T, ctx context.Context, sn snapshot.Snapshotter) []string {
	t.Helper()
	var names []string
	if err := sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		names = append(names, i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

func testWalkStatUpdate(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, _ string) {
	layer(t, ctx, sn, "l1", "", nil)
	if _, err := sn.Prepare(ctx, "work", "l1", snapshot.WithLabels(map[string]string{"a": "1", "b": "2"})); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"l1", "work"}, walkNames(t, ctx, sn)); diff != "" {
		t.Errorf("walk (-want +got):\n%s", diff)
	}
	info, err := sn.Stat(ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshot.KindActive || info.Parent != "l1" || info.Created.IsZero() ||
		!cmp.Equal(info.Labels, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("stat work: got %+v", info)
	}
	info, err = sn.Update(ctx, snapshot.Info{Name: "work", Labels: map[string]string{"a": "9"}}, "labels.a", "labels.b")
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(info.Labels, map[string]string{"a": "9"}) {
		t.Errorf("update labels: got %v, want a=9 only", info.Labels)
	}
	if _, err := sn.Update(ctx, snapshot.Info{Name: "work", Parent: "x"}, "parent"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("update parent: got %v, want InvalidArgument", err)
	}
	// Commit keeps labels unless the caller sets them.
	if err := sn.Commit(ctx, "l2", "work", snapshot.WithLabels(map[string]string{"c": "3"})); err != nil {
		t.Fatal(err)
	}
	info, _ = sn.Stat(ctx, "l2")
	if !cmp.Equal(info.Labels, map[string]string{"a": "9", "c": "3"}) || info.Parent != "l1" {
		t.Errorf("committed l2: got %+v", info)
	}
	stop := errors.New("stop")
	if err := sn.Walk(ctx, func(context.Context, snapshot.Info) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("walk error: got %v, want the callback's", err)
	}
}

func testUsage(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, _ string) {
	mounts, err := sn.Prepare(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, mounts, func(dir string) {
		writeFile(t, filepath.Join(dir, "big"), string(make([]byte, 1<<20)))
		if err := os.Link(filepath.Join(dir, "big"), filepath.Join(dir, "big2")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "d/small"), "x")
	})
	u, err := sn.Usage(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	// root dir, big (once), d, d/small
	if u.Inodes != 4 || u.Size < 1<<20 || u.Size > 1<<20+64<<10 {
		t.Errorf("usage: got %+v, want 4 inodes and ~1 MiB", u)
	}
}

func testViewReadOnly(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, _ string) {
	layer(t, ctx, sn, "base", "", map[string]string{"f": "x"})
	mounts, err := sn.View(ctx, "v", "base")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, mounts, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err == nil {
			t.Errorf("write into a view succeeded")
		}
	})
}

const chainLen = 128

func testLongChain(t *testing.T, ctx context.Context, sn snapshot.Snapshotter, _ string) {
	parent := ""
	for i := range chainLen {
		files := map[string]string{fmt.Sprintf("layers/%03d", i): fmt.Sprint(i)}
		if i == 0 {
			files["bottom.txt"] = "bottom"
		}
		name := fmt.Sprintf("layer-%03d-with-a-longish-name-to-look-like-a-chain-id", i)
		layer(t, ctx, sn, name, parent, files)
		parent = name
	}
	mounts, err := sn.View(ctx, "top", parent)
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, mounts, func(dir string) {
		wantFile(t, filepath.Join(dir, "bottom.txt"), "bottom")
		wantFile(t, filepath.Join(dir, "layers/127"), "127")
		ents, _ := os.ReadDir(filepath.Join(dir, "layers"))
		if len(ents) != chainLen {
			t.Errorf("layers/: got %d entries, want %d", len(ents), chainLen)
		}
	})
}

func testRestart(t *testing.T, newSn Factory) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "sn")
	sn, err := newSn(t, root)
	if err != nil {
		t.Fatal(err)
	}
	layer(t, ctx, sn, "base", "", map[string]string{"f": "base"})
	if _, err := sn.Prepare(ctx, "act", "base", snapshot.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	before := walkNames(t, ctx, sn)
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	sn, err = newSn(t, root)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer sn.Close()
	if diff := cmp.Diff(before, walkNames(t, ctx, sn)); diff != "" {
		t.Errorf("snapshots after restart (-before +after):\n%s", diff)
	}
	if info, err := sn.Stat(ctx, "act"); err != nil || info.Labels["k"] != "v" || info.Parent != "base" {
		t.Errorf("stat act after restart: %+v, %v", info, err)
	}
	mounts, err := sn.Mounts(ctx, "act")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, mounts, func(dir string) { wantFile(t, filepath.Join(dir, "f"), "base") })
	// New ids do not collide with the old ones.
	layer(t, ctx, sn, "next", "base", map[string]string{"g": "next"})
	mounts, err = sn.View(ctx, "v", "next")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, mounts, func(dir string) {
		wantFile(t, filepath.Join(dir, "f"), "base")
		wantFile(t, filepath.Join(dir, "g"), "next")
	})
}
