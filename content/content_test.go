package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"berth.dev/berth/content"
	"berth.dev/berth/content/local"
	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
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

func put(t *testing.T, s *local.Store, mt string, b []byte) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	d := ocispec.Descriptor{MediaType: mt, Digest: digest.SHA256.FromBytes(b), Size: int64(len(b))}
	w, err := s.Writer(ctx, "t-"+d.Digest.String(), d)
	if errdefs.IsAlreadyExists(err) {
		return d
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Commit(ctx, d.Size, d.Digest); err != nil {
		t.Fatal(err)
	}
	return d
}

func putJSON(t *testing.T, s *local.Store, mt string, v any) ocispec.Descriptor {
	b, _ := json.Marshal(v)
	return put(t, s, mt, b)
}

// image stores a manifest with a config and n layers and returns it.
func image(t *testing.T, s *local.Store, mt, tag string, n int) (ocispec.Descriptor, []ocispec.Descriptor) {
	cfg := put(t, s, ocispec.MediaTypeImageConfig, []byte(`{"tag":"`+tag+`"}`))
	blobs := []ocispec.Descriptor{cfg}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mt, Config: cfg}
	for i := range n {
		l := put(t, s, ocispec.MediaTypeImageLayerGzip, []byte(tag+"-layer-"+string(rune('a'+i))))
		m.Layers = append(m.Layers, l)
		blobs = append(blobs, l)
	}
	return putJSON(t, s, mt, m), blobs
}

func TestChildren(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	oci, ociBlobs := image(t, s, ocispec.MediaTypeImageManifest, "oci", 2)
	docker, dockerBlobs := image(t, s, content.MediaTypeDockerManifest, "docker", 1)
	amd := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	oci.Platform, docker.Platform = &amd, &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	idx := putJSON(t, s, content.MediaTypeDockerManifestList, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{oci, docker}})
	garbage := put(t, s, ocispec.MediaTypeImageManifest, []byte("{not json"))
	bad := putJSON(t, s, ocispec.MediaTypeImageManifest, map[string]any{"config": map[string]any{"digest": "sha256:../../etc", "size": 1}})
	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		want    []ocispec.Descriptor
		wantErr func(error) bool
	}{
		{"oci manifest", oci, ociBlobs, nil},
		{"docker manifest", docker, dockerBlobs, nil},
		{"index", idx, []ocispec.Descriptor{oci, docker}, nil},
		{"layer", ociBlobs[1], nil, nil},
		{"invalid json", garbage, nil, errdefs.IsInvalidArgument},
		{"bad child digest", bad, nil, errdefs.IsInvalidArgument},
		{"absent", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.SHA256.FromString("x"), Size: 1}, nil, errdefs.IsNotFound},
		{"too large", ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: oci.Digest, Size: content.MaxManifestSize + 1}, nil, errdefs.IsFailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := content.Children(ctx, s, tc.desc)
			if tc.wantErr != nil {
				if !tc.wantErr(err) || !strings.Contains(err.Error(), tc.desc.Digest.String()) {
					t.Fatalf("got %v, want an error of the right class naming %s", err, tc.desc.Digest)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("resolve by platform", func(t *testing.T) {
		arm, _ := content.ParsePlatform("linux/arm64")
		d, _, err := content.ResolveManifest(ctx, s, idx, content.NewMatcher(arm))
		if err != nil || d.Digest != docker.Digest {
			t.Errorf("got %s, %v; want %s", d.Digest, err, docker.Digest)
		}
	})
}

func TestGC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	keep, keepBlobs := image(t, s, ocispec.MediaTypeImageManifest, "keep", 2)
	_, dropBlobs := image(t, s, ocispec.MediaTypeImageManifest, "drop", 2)
	inflight := put(t, s, ocispec.MediaTypeImageLayerGzip, []byte("being pulled"))
	// An index whose second platform was never pulled.
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.SHA256.FromString("other"), Size: 5}
	idx := putJSON(t, s, ocispec.MediaTypeImageIndex, ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{keep, absent}})

	removed, err := content.GC(ctx, s, []ocispec.Descriptor{idx}, func(d digest.Digest) bool { return d == inflight.Digest })
	if err != nil {
		t.Fatal(err)
	}
	want := []digest.Digest{}
	for _, b := range dropBlobs {
		want = append(want, b.Digest)
	}
	// the "drop" manifest itself
	var left []digest.Digest
	s.Walk(ctx, func(i content.Info) error { left = append(left, i.Digest); return nil })
	for _, d := range append(keepBlobs, keep, idx, inflight) {
		if !slices.Contains(left, d.Digest) {
			t.Errorf("GC removed %s, which is referenced or protected", d.Digest)
		}
	}
	for _, d := range want {
		if !slices.Contains(removed, d) || slices.Contains(left, d) {
			t.Errorf("GC kept %s, which is unreferenced", d)
		}
	}
	if len(removed) != len(dropBlobs)+1 {
		t.Errorf("removed %d blobs, want %d", len(removed), len(dropBlobs)+1)
	}

	// A corrupt root aborts before anything is deleted.
	junk := put(t, s, ocispec.MediaTypeImageIndex, []byte("not json"))
	orphan := put(t, s, "application/octet-stream", []byte("orphan"))
	if _, err := content.GC(ctx, s, []ocispec.Descriptor{junk}, nil); err == nil {
		t.Error("GC with a corrupt root succeeded")
	}
	if _, err := s.Info(ctx, orphan.Digest); err != nil {
		t.Errorf("orphan deleted by an aborted GC: %v", err)
	}
}

func TestPlatform(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    ocispec.Platform
		wantErr bool
	}{
		{"linux/amd64", ocispec.Platform{OS: "linux", Architecture: "amd64"}, false},
		{"linux/arm64", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, false},
		{"linux/arm64/v8", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, false},
		{"linux/aarch64", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, false},
		{"linux/x86_64", ocispec.Platform{OS: "linux", Architecture: "amd64"}, false},
		{"linux/arm/7", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, false},
		{"linux", ocispec.Platform{}, true},
		{"linux/", ocispec.Platform{}, true},
		{"Linux/AMD64", ocispec.Platform{}, true},
		{"a/b/c/d", ocispec.Platform{}, true},
	}
	for _, tc := range tests {
		got, err := content.ParsePlatform(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParsePlatform(%q) error %v, want error=%v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParsePlatform(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	arm64 := content.NewMatcher(ocispec.Platform{OS: "linux", Architecture: "arm64"})
	for p, want := range map[string]bool{"linux/arm64": true, "linux/arm64/v8": true, "linux/amd64": false, "windows/arm64": false} {
		pl, _ := content.ParsePlatform(p)
		if got := arm64.Match(pl); got != want {
			t.Errorf("arm64 matcher on %s = %v, want %v", p, got, want)
		}
	}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.SHA256.FromString("att"), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.SHA256.FromString("arm"), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	}}
	if d, err := content.SelectManifest(idx, arm64); err != nil || d.Digest != idx.Manifests[1].Digest {
		t.Errorf("SelectManifest = %s, %v", d.Digest, err)
	}
	if _, err := content.SelectManifest(idx, content.NewMatcher(ocispec.Platform{OS: "linux", Architecture: "amd64"})); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/arm64/v8") {
		t.Errorf("SelectManifest(amd64) = %v, want not found listing linux/arm64/v8", err)
	}
	if got := content.FormatPlatform(content.HostPlatform()); got == "" || bytes.Count([]byte(got), []byte("/")) < 1 {
		t.Errorf("HostPlatform formats as %q", got)
	}
}

func TestParseDigest(t *testing.T) {
	t.Parallel()
	good := digest.SHA256.FromString("x").String()
	for s, ok := range map[string]bool{
		good: true, strings.ToUpper(good): false, "sha256:" + strings.Repeat("a", 63): false,
		"sha512:" + strings.Repeat("a", 128): false, "sha256:../../../../etc/passwd": false, "": false, good + "\n": false,
	} {
		_, err := content.ParseDigest(s)
		if (err == nil) != ok {
			t.Errorf("ParseDigest(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}
