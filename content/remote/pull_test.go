package remote

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/content"
	"berth.dev/berth/content/local"
	"berth.dev/berth/internal/testutil"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fault lets a test rewrite the registry's answer for one blob.
type fault func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

type testRegistry struct {
	srv  *httptest.Server
	host string
	// pushOpts reach a TLS registry (its CA, a client certificate).
	pushOpts []ggcr.Option
	mu       sync.Mutex
	fault    fault
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	tr.srv = httptest.NewServer(tr.handler())
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// handler is ggcr's in-process registry behind the test's fault.
func (tr *testRegistry) handler() http.Handler {
	h := registry.New(registry.Logger(nullLogger()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		f := tr.fault
		tr.mu.Unlock()
		if f != nil && f(w, r, h) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (tr *testRegistry) setFault(f fault) {
	tr.mu.Lock()
	tr.fault = f
	tr.mu.Unlock()
}

// push copies the test layout name into the registry as repo:latest and
// returns the root's descriptor.
func (tr *testRegistry) push(t *testing.T, image, repo string) v1.Descriptor {
	t.Helper()
	dir := testutil.TestImages(t, image)
	p, err := layout.FromPath(filepath.Join(dir, image))
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	root := im.Manifests[0]
	ref, err := name.ParseReference(tr.host + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if root.MediaType.IsIndex() {
		idx, err := top.ImageIndex(root.Digest)
		if err != nil {
			t.Fatal(err)
		}
		err = ggcr.WriteIndex(ref, idx, tr.pushOpts...)
	} else {
		img, err2 := top.Image(root.Digest)
		if err2 != nil {
			t.Fatal(err2)
		}
		err = ggcr.Write(ref, img, tr.pushOpts...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func newStore(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hasBlob(s *local.Store, d digest.Digest) bool {
	_, err := s.Info(context.Background(), d)
	return err == nil
}

func manifestOf(t *testing.T, s *local.Store, root ocispec.Descriptor, p ocispec.Platform) ocispec.Manifest {
	t.Helper()
	_, m, err := content.ResolveManifest(context.Background(), s, root, content.NewMatcher(p))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPull_TagAndDigest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newRegistry(t)
	want := reg.push(t, "busybox", "library/busybox")
	for _, ref := range []string{
		reg.host + "/library/busybox:latest",
		reg.host + "/library/busybox@" + want.Digest.String(),
	} {
		t.Run(ref, func(t *testing.T) {
			s := newStore(t)
			var committed []ocispec.Descriptor
			var done atomic.Int32
			root, err := Pull(ctx, s, ref, PullOptions{
				OnBlobCommitted: func(d ocispec.Descriptor) { committed = append(committed, d) },
				Progress: func(d ocispec.Descriptor, off, total int64, fin bool) {
					if fin {
						done.Add(1)
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if root.Digest.String() != want.Digest.String() || root.MediaType != ocispec.MediaTypeImageManifest {
				t.Fatalf("root = %s %s, want %s", root.MediaType, root.Digest, want.Digest)
			}
			m := manifestOf(t, s, root, content.HostPlatform())
			for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				if !hasBlob(s, d.Digest) {
					t.Errorf("blob %s missing after pull", d.Digest)
				}
			}
			if len(committed) != 1+len(m.Layers) {
				t.Errorf("OnBlobCommitted called %d times, want %d", len(committed), 1+len(m.Layers))
			}
			if int(done.Load()) != 2+len(m.Layers) {
				t.Errorf("progress done %d times, want %d", done.Load(), 2+len(m.Layers))
			}
			// A second pull fetches nothing new and still succeeds.
			if _, err := Pull(ctx, s, ref, PullOptions{}); err != nil {
				t.Errorf("second pull: %v", err)
			}
		})
	}
}

func TestPull_Multiarch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newRegistry(t)
	reg.push(t, "multiarch", "multi")
	ref := reg.host + "/multi:latest"
	arm64, _ := content.ParsePlatform("linux/arm64")
	amd64, _ := content.ParsePlatform("linux/amd64")
	tests := []struct {
		name     string
		platform *ocispec.Platform
		want     string // the IMAGE_ARCH in the config
	}{
		{"arm64 by option", &arm64, "arm64"},
		{"amd64 by option", &amd64, "amd64"},
		{"host by default", nil, runtime.GOARCH},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.platform == nil && runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
				t.Skip("the index has amd64 and arm64 only")
			}
			s := newStore(t)
			root, err := Pull(ctx, s, ref, PullOptions{Platform: tc.platform})
			if err != nil {
				t.Fatal(err)
			}
			if root.MediaType != ocispec.MediaTypeImageIndex {
				t.Fatalf("root media type %s, want an index", root.MediaType)
			}
			p := content.HostPlatform()
			if tc.platform != nil {
				p = *tc.platform
			}
			m := manifestOf(t, s, root, p)
			cfg, err := content.ReadBlob(ctx, s, m.Config, content.MaxManifestSize)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(cfg), "IMAGE_ARCH="+tc.want) {
				t.Errorf("config %s lacks IMAGE_ARCH=%s", cfg, tc.want)
			}
			// Only one platform's config was fetched.
			n := 0
			s.Walk(ctx, func(content.Info) error { n++; return nil })
			if n != 4 { // index, manifest, config, layer
				t.Errorf("%d blobs in the store, want 4", n)
			}
		})
	}
	t.Run("platform not offered", func(t *testing.T) {
		s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}
		_, err := Pull(ctx, newStore(t), ref, PullOptions{Platform: &s390x})
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/arm64") {
			t.Errorf("got %v, want not found listing the offered platforms", err)
		}
	})
}

// layerOf returns the busybox layer's descriptor as pushed.
func layerOf(t *testing.T, reg *testRegistry) ocispec.Descriptor {
	t.Helper()
	s := newStore(t)
	root, err := Pull(context.Background(), s, reg.host+"/library/busybox:latest", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return manifestOf(t, s, root, content.HostPlatform()).Layers[0]
}

func isBlobGet(r *http.Request, d digest.Digest) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+d.String())
}

func TestPull_Faults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newRegistry(t)
	reg.push(t, "busybox", "library/busybox")
	layer := layerOf(t, reg)
	ref := reg.host + "/library/busybox:latest"

	t.Run("wrong bytes", func(t *testing.T) {
		reg.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			junk := make([]byte, layer.Size)
			rand.Read(junk)
			w.Header().Set("Content-Length", fmt.Sprint(layer.Size))
			w.Write(junk)
			return true
		})
		defer reg.setFault(nil)
		s := newStore(t)
		_, err := Pull(ctx, s, ref, PullOptions{})
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), layer.Digest.String()) || !strings.Contains(err.Error(), ref) {
			t.Fatalf("got %v, want a failed precondition naming %s and %s", err, ref, layer.Digest)
		}
		if hasBlob(s, layer.Digest) {
			t.Error("the wrong bytes were committed")
		}
		if sts, _ := s.ListStatuses(ctx); len(sts) != 0 {
			t.Errorf("ingests left: %+v", sts)
		}
	})

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("larger than the descriptor chunked=%v", chunked), func(t *testing.T) {
			reg.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if !isBlobGet(r, layer.Digest) {
					return false
				}
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				body := append(rec.Body.Bytes(), make([]byte, 1<<20)...)
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				}
				w.WriteHeader(http.StatusOK)
				for len(body) > 0 {
					n := min(len(body), 64<<10)
					w.Write(body[:n])
					w.(http.Flusher).Flush()
					body = body[n:]
				}
				return true
			})
			defer reg.setFault(nil)
			s := newStore(t)
			_, err := Pull(ctx, s, ref, PullOptions{})
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), layer.Digest.String()) {
				t.Fatalf("got %v, want a failed precondition naming %s", err, layer.Digest)
			}
			if hasBlob(s, layer.Digest) {
				t.Error("an oversized blob was committed")
			}
			if sts, _ := s.ListStatuses(ctx); len(sts) != 0 {
				t.Errorf("ingests left: %+v", sts)
			}
		})
	}

	t.Run("connection cut at 50% resumes with Range", func(t *testing.T) {
		var ranges []string
		var mu sync.Mutex
		reg.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			first := len(ranges) == 1
			mu.Unlock()
			if !first {
				return false
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			w.Header().Set("Content-Length", fmt.Sprint(layer.Size))
			w.WriteHeader(http.StatusOK)
			w.Write(rec.Body.Bytes()[:layer.Size/2])
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		})
		defer reg.setFault(nil)
		s := newStore(t)
		// The same pull resumes from the half the ingest holds.
		if _, err := Pull(ctx, s, ref, PullOptions{}); err != nil {
			t.Fatalf("pull with a cut connection: %v", err)
		}
		want := fmt.Sprintf("bytes=%d-%d", layer.Size/2, layer.Size-1)
		if len(ranges) != 2 || ranges[1] != want {
			t.Errorf("Range headers %q, want the retry to send %q", ranges, want)
		}
		if err := s.Verify(ctx, layer.Digest); err != nil {
			t.Errorf("resumed layer: %v", err)
		}
	})

	t.Run("range ignored restarts", func(t *testing.T) {
		s := newStore(t)
		w, err := s.Writer(ctx, IngestRef(layer), layer)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("garbage that a full restart must drop"))
		w.Close()
		reg.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			r.Header.Del("Range")
			return false
		})
		defer reg.setFault(nil)
		if _, err := Pull(ctx, s, ref, PullOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(ctx, layer.Digest); err != nil {
			t.Error(err)
		}
	})

	t.Run("stall hits the progress timeout", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		reg.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			w.Header().Set("Content-Length", fmt.Sprint(layer.Size))
			w.WriteHeader(http.StatusOK)
			w.Write([]byte{0x1f})
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		})
		defer reg.setFault(nil)
		start := time.Now()
		_, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{ProgressTimeout: 300 * time.Millisecond}})
		if err == nil || !strings.Contains(err.Error(), "no progress") || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want a progress timeout", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("took %s", time.Since(start))
		}
	})

	t.Run("parallel pulls share one download", func(t *testing.T) {
		var gets atomic.Int32
		reg.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
			if isBlobGet(r, layer.Digest) {
				gets.Add(1)
			}
			return false
		})
		defer reg.setFault(nil)
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = Pull(ctx, s, ref, PullOptions{})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if gets.Load() != 1 {
			t.Errorf("layer fetched %d times, want 1", gets.Load())
		}
	})
}

func TestParseRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"busybox", "index.docker.io/library/busybox:latest", true},
		{"127.0.0.1:5000/a/b:1.0", "127.0.0.1:5000/a/b:1.0", true},
		{"r.example/app@sha256:" + strings.Repeat("a", 64), "r.example/app@sha256:" + strings.Repeat("a", 64), true},
		{"", "", false},
		{"UPPER/case", "", false},
		{"a:b:c", "", false},
		{"app@sha256:abc", "", false},
		{"app@sha512:" + strings.Repeat("a", 128), "", false},
		{"a b", "", false},
	}
	for _, tc := range tests {
		r, err := ParseRef(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseRef(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.in)) && tc.in != "" {
				t.Errorf("ParseRef(%q) = %v, want invalid argument naming it", tc.in, err)
			}
			continue
		}
		if got := r.Name(); got != tc.want {
			t.Errorf("ParseRef(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	inner := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		ok(rec, r)
		return rec.Result(), nil
	})
	tests := []struct {
		name   string
		p      policy
		url    string
		auth   bool
		wantOK bool
	}{
		{"https to the registry", policy{registry: "10.0.0.1:5000"}, "https://10.0.0.1:5000/v2/", true, true},
		{"http to a private address", policy{registry: "10.0.0.1:5000"}, "http://10.0.0.1:5000/v2/", false, false},
		{"http when allowed", policy{registry: "10.0.0.1:5000", allowHTTP: true}, "http://10.0.0.1:5000/v2/", false, true},
		{"credentials to another host", policy{registry: "r.example"}, "https://evil.example/token", true, false},
		{"anonymous token from another host", policy{registry: "r.example"}, "https://auth.example/token", false, true},
		{"credentials to a listed auth host", policy{registry: "r.example", authHosts: []string{"auth.example"}}, "https://auth.example/token", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.inner = inner
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			if tc.auth {
				req.SetBasicAuth("u", "p")
			}
			_, err := tc.p.RoundTrip(req)
			if (err == nil) != tc.wantOK {
				t.Errorf("got %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
	for host, want := range map[string]bool{"127.0.0.1:5000": true, "[::1]:5000": true, "localhost": true, "localhost:80": true, "10.0.0.1:5000": false, "example.com": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
