package test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// rawManifest is a manifest pushed byte for byte, served with the given
// Content-Type.
type rawManifest struct {
	body []byte
	mt   types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// Hostile documents (issue 18, items 5 and 6) through a real berthd: an
// image whose config and layer have media types no runtime knows, and
// documents that read as both a manifest and an index (CVE-2021-41190) or
// disagree with their Content-Type. Each pull is refused naming why,
// nothing of it is listed as an image, and berthd still runs busybox.
func TestHostile_DocumentsThroughBerthd(t *testing.T) {
	testutil.RequireRoot(t)
	reg := harness.StartInProcessRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox")

	htmlCfg := static.NewLayer([]byte(`<html>not a config</html>`), "text/html")
	unknownLayer := static.NewLayer([]byte("hcx payload"), "application/x-hcx-unknown")
	goodCfg := static.NewLayer([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`), types.OCIConfigJSON)
	desc := func(l v1.Layer, mt string) map[string]any {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		return map[string]any{"mediaType": mt, "digest": d.String(), "size": n}
	}
	doc := func(fields map[string]any) []byte {
		fields["schemaVersion"] = 2
		b, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const ociManifest, ociIndex = "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"
	cfg := desc(goodCfg, "application/vnd.oci.image.config.v1+json")
	cases := []struct {
		repo string
		body []byte
		mt   types.MediaType
		want string // in the CLI's error
	}{
		{"hostile/html-config", doc(map[string]any{"mediaType": ociManifest, "config": desc(htmlCfg, "text/html"), "layers": []any{}}), types.OCIManifestSchema1, `"text/html"`},
		{"hostile/unknown-layer", doc(map[string]any{"mediaType": ociManifest, "config": cfg, "layers": []any{desc(unknownLayer, "application/x-hcx-unknown")}}), types.OCIManifestSchema1, `"application/x-hcx-unknown"`},
		{"hostile/both", doc(map[string]any{"config": cfg, "layers": []any{}, "manifests": []any{}}), types.OCIManifestSchema1, "ambiguous"},
		{"hostile/index-with-layers", doc(map[string]any{"mediaType": ociIndex, "layers": []any{}, "manifests": []any{}}), types.OCIImageIndex, "ambiguous"},
		{"hostile/served-as", doc(map[string]any{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": cfg, "layers": []any{}}), types.OCIManifestSchema1, "served as"},
	}
	for _, tc := range cases {
		repo, err := name.NewRepository(reg.Addr + "/" + tc.repo)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range []v1.Layer{htmlCfg, unknownLayer, goodCfg} {
			if err := remote.WriteLayer(repo, l); err != nil {
				t.Fatal(err)
			}
		}
		if err := remote.Put(repo.Tag("1"), rawManifest{tc.body, tc.mt}); err != nil {
			t.Fatal(err)
		}
	}

	d := harness.StartDaemon(t, harness.DaemonOptions{})
	d.MustCLI(t, "image", "pull", refs["busybox"])
	for _, tc := range cases {
		ref := reg.Addr + "/" + tc.repo + ":1"
		r := d.CLI("image", "pull", ref)
		if r.ExitCode != 2 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("pull %s: %s; want exit 2 (invalid) saying %s", tc.repo, r, tc.want)
		}
	}
	if out := d.MustCLI(t, "image", "ls"); strings.Contains(out, "hostile/") {
		t.Errorf("a refused image is listed:\n%s", out)
	}
	r := d.CLI("run", "--rm", refs["busybox"], "control", "echo", "ok")
	if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "ok" {
		t.Fatalf("control image after the hostile documents: %s", r)
	}
}
