package ocilayout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"berth.dev/berth/content"
	"berth.dev/berth/content/local"
	"berth.dev/berth/internal/testutil"
	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t *testing.T) *local.Store {
	t.Helper()
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func digests(t *testing.T, s *local.Store) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	if err := s.Walk(context.Background(), func(i content.Info) error {
		out = append(out, i.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// layoutDigests lists the blob files of a layout directory.
func layoutDigests(t *testing.T, dir string) []digest.Digest {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []digest.Digest
	for _, e := range entries {
		out = append(out, digest.Digest("sha256:"+e.Name()))
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, name := range []string{"busybox", "layered", "multiarch"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(testutil.TestImages(t, name), name)
			a := newStore(t)
			images, err := Import(ctx, a, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(images) != 1 || images[0].Name != "latest" {
				t.Fatalf("images = %+v, want one named latest", images)
			}
			if diff := cmp.Diff(layoutDigests(t, dir), digests(t, a)); diff != "" {
				t.Errorf("imported blobs (-layout +store):\n%s", diff)
			}
			var first bytes.Buffer
			if err := Export(ctx, a, &first, images); err != nil {
				t.Fatal(err)
			}
			b := newStore(t)
			again, err := ImportArchive(ctx, b, bytes.NewReader(first.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(images, again); diff != "" {
				t.Errorf("images after export+import (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(digests(t, a), digests(t, b)); diff != "" {
				t.Errorf("blobs after export+import (-want +got):\n%s", diff)
			}
			var second bytes.Buffer
			if err := Export(ctx, b, &second, again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Error("export is not deterministic")
			}
		})
	}
}

func TestImportArchive_Gzipped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(testutil.TestImages(t, "busybox"), "busybox")
	a := newStore(t)
	images, err := ImportLayout(ctx, a, dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := Export(ctx, a, zw, images); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	p := filepath.Join(t.TempDir(), "busybox.tar.gz")
	os.WriteFile(p, buf.Bytes(), 0o600)
	got, err := Import(ctx, newStore(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(images, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

type entry struct {
	name, link string
	data       []byte
}

func tarOf(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		if e.link != "" {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.data)
	}
	tw.Close()
	return buf.Bytes()
}

// dockerSave turns the busybox layout into a docker save tarball: the
// layer gunzipped as <id>/layer.tar, the config as <hex>.json.
func dockerSave(t *testing.T) ([]byte, ocispec.Manifest) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(testutil.TestImages(t, "busybox"), "busybox")
	s := newStore(t)
	images, err := ImportLayout(ctx, s, dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := content.ReadManifest(ctx, s, images[0].Target)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := content.ReadBlob(ctx, s, m.Config, content.MaxManifestSize)
	ra, _ := s.ReaderAt(ctx, m.Layers[0])
	zr, err := gzip.NewReader(content.NewReader(ra))
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := io.ReadAll(zr)
	ra.Close()
	mf, _ := json.Marshal([]dockerManifest{
		{Config: m.Config.Digest.Encoded() + ".json", RepoTags: []string{"busybox:latest"}, Layers: []string{"aaa/layer.tar"}},
		{Config: m.Config.Digest.Encoded() + ".json", RepoTags: []string{"copy:1"}, Layers: []string{"bbb/layer.tar"}},
	})
	return tarOf(t, []entry{
		{name: "aaa/layer.tar", data: layer},
		{name: "bbb/layer.tar", link: "../aaa/layer.tar"},
		{name: m.Config.Digest.Encoded() + ".json", data: cfg},
		{name: "manifest.json", data: mf},
	}), m
}

func TestImportArchive_DockerSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tarball, orig := dockerSave(t)
	s := newStore(t)
	images, err := ImportArchive(ctx, s, bytes.NewReader(tarball))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, im := range images {
		names = append(names, im.Name)
	}
	if diff := cmp.Diff([]string{"busybox:latest", "copy:1"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	m, err := content.ReadManifest(ctx, s, images[0].Target)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != orig.Config.Digest {
		t.Errorf("config digest %s, want %s", m.Config.Digest, orig.Config.Digest)
	}
	var cfg ocispec.Image
	b, _ := content.ReadBlob(ctx, s, m.Config, content.MaxManifestSize)
	json.Unmarshal(b, &cfg)
	if len(m.Layers) != 1 || m.Layers[0].Digest != cfg.RootFS.DiffIDs[0] || m.Layers[0].MediaType != ocispec.MediaTypeImageLayer {
		t.Errorf("layers %+v, want one uncompressed layer with digest %s", m.Layers, cfg.RootFS.DiffIDs[0])
	}
	// The converted image exports and imports with the same digests.
	var buf bytes.Buffer
	if err := Export(ctx, s, &buf, images); err != nil {
		t.Fatal(err)
	}
	again, err := ImportArchive(ctx, newStore(t), &buf)
	if err != nil {
		t.Fatal(err)
	}
	// The exported index carries the names as ref.name annotations.
	if diff := cmp.Diff(images, again, cmpopts.IgnoreFields(ocispec.Descriptor{}, "Annotations")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestImportArchive_Refused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	badDigest := digest.SHA256.FromString("x")
	tests := []struct {
		name    string
		entries []entry
		want    error
	}{
		{"dot-dot", []entry{{name: "../evil", data: []byte("x")}}, errdefs.ErrInvalidArgument},
		{"dot-dot inside", []entry{{name: "blobs/../../evil", data: []byte("x")}}, errdefs.ErrInvalidArgument},
		{"absolute", []entry{{name: "/etc/passwd", data: []byte("x")}}, errdefs.ErrInvalidArgument},
		{"link out", []entry{{name: "a/layer.tar", link: "../../x"}}, errdefs.ErrInvalidArgument},
		{"bad blob name", []entry{{name: "blobs/sha256/NOTHEX", data: []byte("x")}}, errdefs.ErrInvalidArgument},
		{"blob with wrong bytes", []entry{{name: "blobs/sha256/" + badDigest.Encoded(), data: []byte("y")}}, errdefs.ErrFailedPrecondition},
		{"empty", nil, errdefs.ErrInvalidArgument},
		{"missing blob", []entry{
			{name: "oci-layout", data: layout},
			{name: "index.json", data: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + badDigest.String() + `","size":1}]}`)},
		}, errdefs.ErrNotFound},
		{"index with a bad digest", []entry{
			{name: "oci-layout", data: layout},
			{name: "index.json", data: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../x","size":1}]}`)},
		}, errdefs.ErrInvalidArgument},
		{"oversized json", []entry{{name: "manifest.json", data: make([]byte, maxJSONSize+1)}}, errdefs.ErrFailedPrecondition},
		{"config text/html", hostileLayout(t, "text/html", ocispec.MediaTypeImageLayer), errdefs.ErrNotImplemented},
		{"unknown layer", hostileLayout(t, ocispec.MediaTypeImageConfig, "application/x-hcx-unknown"), errdefs.ErrNotImplemented},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			_, err := ImportArchive(ctx, s, bytes.NewReader(tarOf(t, tc.entries)))
			if !errdefs.IsNotFound(err) && tc.want == errdefs.ErrNotFound || err == nil {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want != errdefs.ErrNotFound && !isClass(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if slices.Contains(digests(t, s), badDigest) {
				t.Error("a blob with wrong bytes was committed")
			}
		})
	}
}

// hostileLayout is an OCI layout of one image whose config and layer have
// the given media types.
func hostileLayout(t *testing.T, configType, layerType string) []entry {
	t.Helper()
	blob := func(b []byte) entry { return entry{name: "blobs/sha256/" + digestOf(b).Encoded(), data: b} }
	cfg, layer := []byte(`{}`), []byte("layer")
	m, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: configType, Digest: digestOf(cfg), Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{{MediaType: layerType, Digest: digestOf(layer), Size: int64(len(layer))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	idx := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digestOf(m).String() + `","size":` + strconv.Itoa(len(m)) + `}]}`
	return []entry{
		{name: "oci-layout", data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", data: []byte(idx)},
		blob(m), blob(cfg), blob(layer),
	}
}

func isClass(err, class error) bool {
	switch class {
	case errdefs.ErrInvalidArgument:
		return errdefs.IsInvalidArgument(err)
	case errdefs.ErrFailedPrecondition:
		return errdefs.IsFailedPrecondition(err)
	case errdefs.ErrNotImplemented:
		return errdefs.IsNotImplemented(err)
	}
	return false
}
