package remote

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"berth.dev/berth/content"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// rawManifest is a manifest pushed byte for byte, with the Content-Type the
// registry will serve it with.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// pushRaw uploads blobs (as given, with their media types) and a manifest
// body as repo:latest, and returns the reference.
func pushRaw(t *testing.T, reg *testRegistry, repo string, body []byte, mt types.MediaType, blobs ...v1.Layer) string {
	t.Helper()
	r, err := name.NewRepository(reg.host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range blobs {
		if err := ggcr.WriteLayer(r, l); err != nil {
			t.Fatal(err)
		}
	}
	ref := r.Tag("latest")
	if err := ggcr.Put(ref, rawManifest{body, mt}); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func descOf(t *testing.T, l v1.Layer, mt string) ocispec.Descriptor {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(d.String()), Size: n}
}

func TestPull_RefusesUnknownMediaTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfgBlob := static.NewLayer([]byte(`<html>not a config</html>`), "text/html")
	layerBlob := static.NewLayer([]byte("hcx payload"), "application/x-hcx-unknown")
	goodCfg := static.NewLayer([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), types.OCIConfigJSON)
	cfg := descOf(t, cfgBlob, "text/html")
	layer := descOf(t, layerBlob, "application/x-hcx-unknown")
	good := descOf(t, goodCfg, ocispec.MediaTypeImageConfig)
	manifest := func(c ocispec.Descriptor, ls ...ocispec.Descriptor) []byte {
		return mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "config": c, "layers": ls})
	}
	for _, tc := range []struct {
		name string
		body []byte
		want []string // in the error
	}{
		{"config text/html", manifest(cfg, layer), []string{`"text/html"`, "config", cfg.Digest.String()}},
		{"layer unknown", manifest(good, layer), []string{`"application/x-hcx-unknown"`, "layer 0", layer.Digest.String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry(t)
			var blobGets atomic.Int32
			reg.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
					blobGets.Add(1)
				}
				return false
			})
			ref := pushRaw(t, reg, "hostile/image", tc.body, types.OCIManifestSchema1, cfgBlob, layerBlob, goodCfg)
			s := newStore(t)
			_, err := Pull(ctx, s, ref, PullOptions{})
			if err == nil {
				t.Fatal("pull of a hostile image succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
			if n := blobGets.Load(); n != 0 {
				t.Errorf("%d blobs fetched from a refused image", n)
			}
			if hasBlob(s, layer.Digest) || hasBlob(s, cfg.Digest) {
				t.Error("a blob of the refused image is in the store")
			}
		})
	}
}

func TestPull_RefusesAmbiguousDocuments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	layerBlob := static.NewLayer([]byte("layer"), types.OCILayer)
	cfgBlob := static.NewLayer([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), types.OCIConfigJSON)
	layer := descOf(t, layerBlob, ocispec.MediaTypeImageLayerGzip)
	cfg := descOf(t, cfgBlob, ocispec.MediaTypeImageConfig)
	doc := func(fields map[string]any) []byte {
		fields["schemaVersion"] = 2
		return mustJSON(t, fields)
	}
	for _, tc := range []struct {
		name string
		body []byte
		mt   types.MediaType // Content-Type served
		want string
	}{
		{"layers and manifests", doc(map[string]any{"config": cfg, "layers": []any{layer}, "manifests": []any{}}), types.OCIManifestSchema1, "ambiguous"},
		{"index carrying layers", doc(map[string]any{"mediaType": ocispec.MediaTypeImageIndex, "layers": []any{layer}, "manifests": []any{}}), types.OCIImageIndex, "ambiguous"},
		{"mediaType disagrees with Content-Type", doc(map[string]any{"mediaType": content.MediaTypeDockerManifest, "config": cfg, "layers": []any{layer}}), types.OCIManifestSchema1, "served as"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRegistry(t)
			ref := pushRaw(t, reg, "cve-2021-41190/image", tc.body, tc.mt, layerBlob, cfgBlob)
			_, err := Pull(ctx, newStore(t), ref, PullOptions{})
			if err == nil {
				t.Fatal("pull of an ambiguous document succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}
