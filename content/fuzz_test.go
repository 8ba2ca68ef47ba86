package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memBlob is one blob held in memory, served whatever digest is asked.
type memBlob []byte

func (b memBlob) ReaderAt(context.Context, ocispec.Descriptor) (content.ReaderAt, error) {
	return memReader{bytes.NewReader(b)}, nil
}

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

// fuzzDesc names body as a blob served with media type mt.
func fuzzDesc(body []byte, mt string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(body), Size: int64(len(body))}
}

// manifestSeeds are documents a registry could serve: valid ones of each
// kind, the ambiguous one of CVE-2021-41190, a lying mediaType, too many
// children, bad descriptors and broken JSON.
func manifestSeeds() [][]byte {
	d := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + string(bytes.Repeat([]byte("a"), 64)) + `","size":3}`
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + string(bytes.Repeat([]byte("b"), 64)) + `","size":2}`
	return [][]byte{
		[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[` + d + `]}`),
		[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + d + `]}`),
		[]byte(`{"schemaVersion":2,"config":` + cfg + `,"layers":[` + d + `],"manifests":[` + d + `]}`),
		[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":` + cfg + `,"layers":[]}`),
		[]byte(`{"config":{"digest":"sha256:xyz","size":-1},"layers":[{"digest":"md5:00","size":1}]}`),
		[]byte(`{"layers":[` + string(bytes.Repeat([]byte(d+","), 1100)) + d + `]}`),
		[]byte(`{"mediaType":7}`),
		[]byte(`{"layers":[`),
		[]byte(`null`),
		{},
	}
}

var documentTypes = []string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	content.MediaTypeDockerManifest, content.MediaTypeDockerManifestList,
	"text/html", "",
}

// FuzzReadManifest feeds arbitrary bodies and served media types to the
// manifest decoder a pull uses: it never panics, never accepts a document
// that also reads as an index, and what it accepts is within its bounds
// with every descriptor valid.
func FuzzReadManifest(f *testing.F) {
	for _, s := range manifestSeeds() {
		for _, mt := range documentTypes {
			f.Add(s, mt)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, mt string) {
		desc := fuzzDesc(body, mt)
		m, err := content.ReadManifest(context.Background(), memBlob(body), desc)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("refusal of %q as %q is not InvalidArgument or FailedPrecondition: %v", body, mt, err)
			}
			return
		}
		if !content.IsManifest(mt) {
			t.Fatalf("accepted a manifest served as %q", mt)
		}
		var probe struct{ Manifests json.RawMessage }
		if json.Unmarshal(body, &probe) == nil && probe.Manifests != nil {
			t.Fatalf("accepted a manifest carrying manifests: %q", body)
		}
		if len(m.Layers) > content.MaxChildren {
			t.Fatalf("accepted %d layers", len(m.Layers))
		}
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := content.ValidateDescriptor(d); err != nil {
				t.Fatalf("accepted an invalid descriptor: %v", err)
			}
		}
		// The image check on top must refuse or accept, never panic.
		_ = content.CheckImage(desc, m)
	})
}

// FuzzReadIndex is FuzzReadManifest for the index (manifest list)
// decoder; a body both decoders accept must list neither layers nor
// manifests, so no digest means two things to two clients.
func FuzzReadIndex(f *testing.F) {
	for _, s := range manifestSeeds() {
		for _, mt := range documentTypes {
			f.Add(s, mt)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, mt string) {
		ctx := context.Background()
		desc := fuzzDesc(body, mt)
		idx, err := content.ReadIndex(ctx, memBlob(body), desc)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) && !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("refusal of %q as %q is not InvalidArgument or FailedPrecondition: %v", body, mt, err)
			}
			return
		}
		if !content.IsIndex(mt) {
			t.Fatalf("accepted an index served as %q", mt)
		}
		if len(idx.Manifests) > content.MaxChildren {
			t.Fatalf("accepted %d manifests", len(idx.Manifests))
		}
		for _, d := range idx.Manifests {
			if err := content.ValidateDescriptor(d); err != nil {
				t.Fatalf("accepted an invalid descriptor: %v", err)
			}
		}
		// Read the same bytes as a manifest (a client that trusts the
		// body over the Content-Type would): it may not list layers.
		for _, other := range []string{ocispec.MediaTypeImageManifest, content.MediaTypeDockerManifest} {
			if m, err := content.ReadManifest(ctx, memBlob(body), fuzzDesc(body, other)); err == nil && (len(m.Layers) > 0 && len(idx.Manifests) > 0) {
				t.Fatalf("one body reads as an index of %d and a manifest of %d layers: %q", len(idx.Manifests), len(m.Layers), body)
			}
		}
		if _, err := content.Children(ctx, memBlob(body), desc); err != nil && !errdefs.IsInvalidArgument(err) && !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("children of an accepted index: %v", err)
		}
	})
}

var _ io.ReaderAt = memReader{}
