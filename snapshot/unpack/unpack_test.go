package unpack

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/native"
	"berth.dev/berth/snapshot/overlay"
)

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// layoutLayers reads a single-manifest OCI layout into Layers whose Open
// counts how often it is called.
func layoutLayers(t *testing.T, dir string, opens *atomic.Int32) []Layer {
	blob := func(d digest.Digest) string { return filepath.Join(dir, "blobs", "sha256", d.Encoded()) }
	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	var m ocispec.Manifest
	readJSON(t, blob(idx.Manifests[0].Digest), &m)
	var cfg ocispec.Image
	readJSON(t, blob(m.Config.Digest), &cfg)
	var out []Layer
	for i, d := range m.Layers {
		p := blob(d.Digest)
		out = append(out, Layer{Desc: d, DiffID: cfg.RootFS.DiffIDs[i], Open: func(context.Context) (io.ReadCloser, error) {
			if opens != nil {
				opens.Add(1)
			}
			return os.Open(p)
		}})
	}
	return out
}

var snapshotters = map[string]func(root string) (snapshot.Snapshotter, error){
	"overlay": func(root string) (snapshot.Snapshotter, error) { return overlay.New(root) },
	"native":  func(root string) (snapshot.Snapshotter, error) { return native.New(root) },
}

func forEach(t *testing.T, fn func(t *testing.T, sn snapshot.Snapshotter)) {
	testutil.RequireRoot(t)
	for name, newSn := range snapshotters {
		t.Run(name, func(t *testing.T) {
			sn, err := newSn(filepath.Join(t.TempDir(), "sn"))
			if err != nil {
				t.Fatal(err)
			}
			defer sn.Close()
			fn(t, sn)
		})
	}
}

func TestUnpack_Layered(t *testing.T) {
	dir := filepath.Join(testutil.TestImages(t, "layered"), "layered")
	verify := filepath.Join(testutil.RepoRoot(t), "..", "shared", "testimages", "verify-layered.sh")
	if _, err := os.Stat(verify); err != nil {
		testutil.Missing(t, "%s: %v", verify, err)
	}
	testutil.RequireBinary(t, "getfattr")
	forEach(t, func(t *testing.T, sn snapshot.Snapshotter) {
		ctx := context.Background()
		var opens atomic.Int32
		layers := layoutLayers(t, dir, &opens)
		var wg sync.WaitGroup
		chains := make([]string, 2)
		errs := make([]error, 2)
		// Two concurrent unpacks of the same image do the work once.
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				chains[i], errs[i] = Unpack(ctx, sn, layers, Options{Labels: map[string]string{"image": "layered"}})
			}()
		}
		wg.Wait()
		for i := range 2 {
			if errs[i] != nil {
				t.Fatalf("unpack %d: %v", i, errs[i])
			}
		}
		if chains[0] != chains[1] || !strings.HasPrefix(chains[0], "sha256:") {
			t.Fatalf("chain IDs: %v", chains)
		}
		if n := opens.Load(); n != int32(len(layers)) {
			t.Errorf("layers opened %d times, want %d (once each)", n, len(layers))
		}
		var committed int
		_ = sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
			if strings.HasPrefix(i.Name, KeyPrefix) {
				t.Errorf("extract snapshot left: %s", i.Name)
			}
			if _, ok := i.Labels[LabelUnpacking]; ok {
				t.Errorf("%s still labelled unpacking", i.Name)
			}
			committed++
			return nil
		})
		if committed != len(layers) {
			t.Errorf("got %d snapshots, want %d", committed, len(layers))
		}
		// Unpacking again does nothing.
		if _, err := Unpack(ctx, sn, layers, Options{}); err != nil || opens.Load() != int32(len(layers)) {
			t.Errorf("second unpack: %v, opens %d", err, opens.Load())
		}

		mounts, err := sn.View(ctx, "check", chains[0])
		if err != nil {
			t.Fatal(err)
		}
		rootfs := t.TempDir()
		if err := snapshot.MountAll(mounts, rootfs); err != nil {
			t.Fatal(err)
		}
		defer snapshot.UnmountAll(rootfs)
		out, err := exec.Command(verify, rootfs).CombinedOutput()
		if err != nil {
			t.Errorf("verify-layered.sh: %v\n%s", err, out)
		}
		checkLayered(t, rootfs)
	})
}

func checkLayered(t *testing.T, r string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(r, "data/opaque-dir"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "new.txt" {
		t.Errorf("opaque-dir: got %v, %v; want only new.txt", ents, err)
	}
	var a, b unix.Stat_t
	if unix.Lstat(filepath.Join(r, "data/links/hardlink-a"), &a) != nil || unix.Lstat(filepath.Join(r, "data/links/hardlink-b"), &b) != nil ||
		a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlinks: inodes %d/%d nlink %d, want one inode, nlink 2", a.Ino, b.Ino, a.Nlink)
	}
	if fi, err := os.Stat(filepath.Join(r, "usr/local/bin/suid-sh")); err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("suid-sh: %v %v, want 4755", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(r, "home/user")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("home/user: %v, want owner 1000", err)
	}
	for _, p := range []string{"data/delete-me.txt", "data/gone-dir", "etc/motd", "data/.wh.delete-me.txt"} {
		if _, err := os.Lstat(filepath.Join(r, p)); !os.IsNotExist(err) {
			t.Errorf("%s: got %v, want it gone", p, err)
		}
	}
}

func TestUnpack_DiffIDMismatch(t *testing.T) {
	dir := filepath.Join(testutil.TestImages(t, "layered"), "layered")
	forEach(t, func(t *testing.T, sn snapshot.Snapshotter) {
		ctx := context.Background()
		layers := layoutLayers(t, dir, nil)[:2]
		layers[1].DiffID = digest.FromString("not the layer")
		_, err := Unpack(ctx, sn, layers, Options{})
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "diffID mismatch") {
			t.Fatalf("got %v, want a diffID mismatch", err)
		}
		var names []string
		_ = sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error { names = append(names, i.Name); return nil })
		if len(names) != 1 { // only layer 0
			t.Errorf("snapshots after a failed unpack: %v, want layer 0 only", names)
		}
	})
}

func TestCleanupStale(t *testing.T) {
	forEach(t, func(t *testing.T, sn snapshot.Snapshotter) {
		ctx := context.Background()
		if _, err := sn.Prepare(ctx, KeyPrefix+"dead-sha256:x", "", snapshot.WithLabels(map[string]string{LabelUnpacking: "t"})); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.Prepare(ctx, "container", ""); err != nil {
			t.Fatal(err)
		}
		if err := CleanupStale(ctx, sn); err != nil {
			t.Fatal(err)
		}
		if _, err := sn.Stat(ctx, KeyPrefix+"dead-sha256:x"); !errdefs.IsNotFound(err) {
			t.Errorf("stale extract: %v, want removed", err)
		}
		if _, err := sn.Stat(ctx, "container"); err != nil {
			t.Errorf("other snapshot removed: %v", err)
		}
	})
}
