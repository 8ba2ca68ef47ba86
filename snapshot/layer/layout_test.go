package layer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testLayer is one layer blob of a test image layout.
type testLayer struct {
	Path   string
	DiffID digest.Digest
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// imageLayers reads the single-manifest OCI layout dir.
func imageLayers(t testing.TB, dir string) []testLayer {
	t.Helper()
	var idx ocispec.Index
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	var m ocispec.Manifest
	readJSON(t, blobPath(dir, idx.Manifests[0].Digest), &m)
	if strings.Contains(idx.Manifests[0].MediaType, "index") {
		t.Fatalf("%s: an index, want a single manifest", dir)
	}
	var cfg ocispec.Image
	readJSON(t, blobPath(dir, m.Config.Digest), &cfg)
	var out []testLayer
	for i, l := range m.Layers {
		out = append(out, testLayer{Path: blobPath(dir, l.Digest), DiffID: cfg.RootFS.DiffIDs[i]})
	}
	return out
}
