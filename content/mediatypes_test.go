package content_test

import (
	"context"
	"strings"
	"testing"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestMediaTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mt            string
		layer, config bool
	}{
		{"application/vnd.oci.image.layer.v1.tar", true, false},
		{"application/vnd.oci.image.layer.v1.tar+gzip", true, false},
		{"application/vnd.oci.image.layer.v1.tar+zstd", true, false},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar", true, false},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", true, false},
		{"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", true, false},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", true, false},
		{"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", true, false},
		{"application/vnd.oci.image.config.v1+json", false, true},
		{"application/vnd.docker.container.image.v1+json", false, true},
		{"application/x-hcx-unknown", false, false},
		{"text/html", false, false},
		{"application/vnd.oci.image.layer.v1.tar+bzip2", false, false},
		{"application/vnd.oci.image.manifest.v1+json", false, false},
		{"application/vnd.cncf.helm.chart.content.v1.tar+gzip", false, false},
		{"", false, false},
	} {
		if got := content.IsLayer(tc.mt); got != tc.layer {
			t.Errorf("IsLayer(%q) = %v, want %v", tc.mt, got, tc.layer)
		}
		if got := content.IsConfig(tc.mt); got != tc.config {
			t.Errorf("IsConfig(%q) = %v, want %v", tc.mt, got, tc.config)
		}
	}
}

// TestReadImageManifest_MediaTypes: an image to run must have known media
// types; a walk over the store (ReadManifest: GC, leases, export) still
// reads any manifest, so an index's attestations are kept, never run.
func TestReadImageManifest_MediaTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	cfg := put(t, s, ocispec.MediaTypeImageConfig, []byte(`{}`))
	layer := put(t, s, ocispec.MediaTypeImageLayerGzip, []byte("layer"))
	with := func(d ocispec.Descriptor, mt string) ocispec.Descriptor { d.MediaType = mt; return d }
	for _, tc := range []struct {
		name   string
		config ocispec.Descriptor
		layers []ocispec.Descriptor
		want   string // in the error; "" for none
	}{
		{"oci", cfg, []ocispec.Descriptor{layer, with(layer, ocispec.MediaTypeImageLayerZstd)}, ""},
		{"docker", with(cfg, content.MediaTypeDockerConfig), []ocispec.Descriptor{with(layer, content.MediaTypeDockerLayerGzip), with(layer, content.MediaTypeDockerForeignLayerGzip)}, ""},
		{"config text/html", with(cfg, "text/html"), []ocispec.Descriptor{layer}, `config ` + cfg.Digest.String() + `: media type "text/html"`},
		{"layer unknown", cfg, []ocispec.Descriptor{layer, with(layer, "application/x-hcx-unknown")}, `layer 1 (` + layer.Digest.String() + `): media type "application/x-hcx-unknown"`},
		{"config without media type", with(cfg, ""), []ocispec.Descriptor{layer}, `media type ""`},
		{"attestation", cfg, []ocispec.Descriptor{with(layer, "application/vnd.in-toto+json")}, `"application/vnd.in-toto+json"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := putJSON(t, s, ocispec.MediaTypeImageManifest, map[string]any{"schemaVersion": 2, "config": tc.config, "layers": tc.layers})
			if _, err := content.ReadManifest(ctx, s, m); err != nil {
				t.Fatalf("ReadManifest (for walks): %v", err)
			}
			_, err := content.ReadImageManifest(ctx, s, m)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsNotImplemented(err) {
				t.Fatalf("err = %v, want NotImplemented naming %s", err, tc.want)
			}
		})
	}
}

func TestCheckDocument(t *testing.T) {
	t.Parallel()
	d := func(mt string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: mt, Digest: digest.FromString("x"), Size: 1}
	}
	for _, tc := range []struct {
		name string
		desc ocispec.Descriptor
		body string
		want string // in the error; "" for none
	}{
		{"manifest", d(ocispec.MediaTypeImageManifest), `{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`, ""},
		{"manifest without mediaType", d(ocispec.MediaTypeImageManifest), `{"config":{},"layers":[]}`, ""},
		{"index", d(ocispec.MediaTypeImageIndex), `{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, ""},
		{"docker list", d(content.MediaTypeDockerManifestList), `{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`, ""},
		{"layers and manifests as manifest", d(ocispec.MediaTypeImageManifest), `{"config":{},"layers":[],"manifests":[]}`, "ambiguous"},
		{"layers and manifests as index", d(ocispec.MediaTypeImageIndex), `{"layers":[],"manifests":[]}`, "ambiguous"},
		{"manifest with manifests", d(ocispec.MediaTypeImageManifest), `{"manifests":[]}`, "manifests field"},
		{"index with config", d(ocispec.MediaTypeImageIndex), `{"config":{}}`, "layers or config"},
		{"mediaType disagrees", d(ocispec.MediaTypeImageManifest), `{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[]}`, `served as "application/vnd.oci.image.manifest.v1+json"`},
		{"index says manifest", d(ocispec.MediaTypeImageIndex), `{"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}`, "body says"},
		{"not JSON", d(ocispec.MediaTypeImageManifest), `<html>`, "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := content.CheckDocument(tc.desc, []byte(tc.body))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument saying %q", err, tc.want)
			}
		})
	}
}
