package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/spec"
)

// TestPull_ReusedBlobsSurviveACollection: a pull that finds a layer in the
// store already does not fetch it; a collection running before the pull
// has recorded its image must not remove that layer (it is unreferenced
// and older than the pull, so a window by creation time alone misses it).
// The layers of a removed image are left in the store, the config blob is
// deleted so the pull has one blob to fetch, and that fetch is held at the
// registry while a collection runs.
func TestPull_ReusedBlobsSurviveACollection(t *testing.T) {
	ctx := context.Background()
	n, cs := storeNode(t, Options{})
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	// Armed for the second pull: its GET of the config waits for block.
	var armed atomic.Bool
	block, reached := make(chan struct{}), make(chan struct{})
	var reachedOnce sync.Once
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if armed.Load() && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+cfg.String()) {
			reachedOnce.Do(func() { close(reached) })
			<-block
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/hold/image:1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcr.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	ns := spec.DefaultNamespace
	first, err := n.Pull(ctx, ns, ref, PullOptions{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.opts.DB.DeleteImage(ctx, ns, first.Name); err != nil {
		t.Fatal(err)
	}
	if err := cs.Delete(ctx, digest.Digest(cfg.String())); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}

	// The window of operations in flight protects blobs made since its
	// oldest started (with a second of slack for filesystem clocks): the
	// layers must be older than that for the pull to reuse them unguarded,
	// as an image removed a while ago has.
	for _, l := range layers {
		d, _ := l.Digest()
		for {
			info, err := cs.Info(ctx, digest.Digest(d.String()))
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(info.CreatedAt) > 1100*time.Millisecond {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	armed.Store(true)
	done := make(chan error, 1)
	var mu sync.Mutex
	seen := map[string]bool{} // blobs the pull found in the store
	go func() {
		_, err := n.Pull(ctx, ns, ref, PullOptions{PlainHTTP: true, Progress: func(p Progress) {
			if p.Status == "done" {
				mu.Lock()
				seen[p.Desc.Digest.String()] = true
				mu.Unlock()
			}
		}})
		done <- err
	}()
	select {
	case <-reached:
	case err := <-done:
		t.Fatalf("pull ended before fetching the config: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the pull never asked for the config blob")
	}
	// The layers' goroutines run beside the config's: wait until the pull
	// has found both in the store.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		found := len(seen)
		mu.Unlock()
		if found >= len(layers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pull found %d of %d layers in the store", found, len(layers))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := n.GC(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		if _, err := cs.Info(ctx, digest.Digest(d.String())); err != nil {
			t.Errorf("layer %s, reused by the pull in flight, was collected: %v", d, err)
		}
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatalf("pull: %v", err)
	}
	// Recorded now: a collection keeps everything.
	if res, err := n.GC(ctx, false); err != nil || len(res.Blobs) != 0 {
		t.Errorf("collection after the pull removed %v (%v), want nothing", res.Blobs, err)
	}
}
