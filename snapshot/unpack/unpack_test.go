package unpack

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/internal/testimage"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/layer"
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
		for _, msg := range testimage.CheckLayered(rootfs) {
			t.Error(msg)
		}
	})
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

// An image over MaxImageSize is refused part way, with nothing half made:
// the layers that fit stay committed (they are valid layers), the one that
// crossed the cap is gone, and OnApplied heard of each layer applied.
func TestUnpack_MaxImageSize(t *testing.T) {
	dir := filepath.Join(testutil.TestImages(t, "layered"), "layered")
	forEach(t, func(t *testing.T, sn snapshot.Snapshotter) {
		ctx := context.Background()
		layers := layoutLayers(t, dir, nil)
		var applied int
		// The busybox base layer is ~2.1 MB; the three small layers above it
		// take the image over a cap just above the base.
		_, err := Unpack(ctx, sn, layers, Options{MaxImageSize: 2_130_000, OnApplied: func(Layer, layer.ApplyResult) { applied++ }})
		if err == nil {
			t.Fatal("unpack over the image cap succeeded")
		}
		var names []string
		_ = sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
			names = append(names, i.Name)
			if i.Kind != snapshot.KindCommitted {
				t.Errorf("snapshot %s left %v after a refused unpack", i.Name, i.Kind)
			}
			return nil
		})
		if len(names) == 0 || len(names) >= len(layers) || applied != len(names) {
			t.Errorf("committed %v, %d reported applied; want some but not all %d layers, each reported", names, applied, len(layers))
		}

		// With room for it, the same image unpacks whole.
		if _, err := Unpack(ctx, sn, layers, Options{MaxImageSize: 64 << 20}); err != nil {
			t.Fatalf("unpack under the cap: %v", err)
		}
	})
}
