package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/internal/testutil"
)

// PushTimeout bounds one PushLayout (the debian image is 49 MB).
const PushTimeout = 2 * time.Minute

// DefaultTestImages are the test images PushTestImages pushes when given no
// names. debian (49 MB) is pushed only when asked for by name.
var DefaultTestImages = []string{"busybox", "layered", "multiarch"}

// ociRefName is the annotation an OCI layout's index.json uses for tags.
const ociRefName = "org.opencontainers.image.ref.name"

// PushLayout pushes the OCI image layout in layoutDir to registryAddr as
// repoTag ("library/busybox:latest") and returns the pushed manifest's
// digest ("sha256:…"). index.json must hold one manifest, or several of
// which one is annotated with the tag; an image index (multiarch) is pushed
// with all its children.
func PushLayout(t testing.TB, registryAddr, layoutDir, repoTag string) string {
	t.Helper()
	d, err := pushLayout(registryAddr, layoutDir, repoTag)
	if err != nil {
		t.Fatalf("push %s to %s/%s: %v", layoutDir, registryAddr, repoTag, err)
	}
	return d
}

// PushTestImages pushes the named test images (DefaultTestImages if none)
// from testutil.TestImages to addr as library/<name>:latest and returns
// name → reference ("127.0.0.1:PORT/library/busybox:latest").
func PushTestImages(t testing.TB, addr string, names ...string) map[string]string {
	t.Helper()
	if len(names) == 0 {
		names = DefaultTestImages
	}
	dir := testutil.TestImages(t, names...)
	refs := make(map[string]string, len(names))
	for _, n := range names {
		repoTag := "library/" + n + ":latest"
		PushLayout(t, addr, filepath.Join(dir, n), repoTag)
		refs[n] = addr + "/" + repoTag
	}
	return refs
}

// LayoutDigest returns the digest of the manifest PushLayout would push from
// layoutDir for tag (empty: the only one), so a test can compare it with what
// a registry or berth reports.
func LayoutDigest(t testing.TB, layoutDir, tag string) string {
	t.Helper()
	_, desc, err := layoutManifest(layoutDir, tag)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

func pushLayout(addr, layoutDir, repoTag string) (string, error) {
	ref, err := name.ParseReference(addr+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("parse reference: %w", err)
	}
	tag := ""
	if tg, ok := ref.(name.Tag); ok {
		tag = tg.TagStr()
	}
	idx, desc, err := layoutManifest(layoutDir, tag)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), PushTimeout)
	defer cancel()
	opts := []remote.Option{remote.WithContext(ctx)}
	switch {
	case desc.MediaType.IsIndex():
		child, err := idx.ImageIndex(desc.Digest)
		if err != nil {
			return "", fmt.Errorf("read index %s: %w", desc.Digest, err)
		}
		err = remote.WriteIndex(ref, child, opts...)
		if err != nil {
			return "", fmt.Errorf("write index: %w", err)
		}
	case desc.MediaType.IsImage():
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return "", fmt.Errorf("read image %s: %w", desc.Digest, err)
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			return "", fmt.Errorf("write image: %w", err)
		}
	default:
		return "", fmt.Errorf("manifest %s has media type %q, neither image nor index", desc.Digest, desc.MediaType)
	}
	return desc.Digest.String(), nil
}

// layoutManifest opens the layout and picks the descriptor to push: the
// only one in index.json, or the one annotated with tag.
func layoutManifest(layoutDir, tag string) (v1.ImageIndex, v1.Descriptor, error) {
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("open OCI layout %s: %w", layoutDir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("read %s/index.json: %w", layoutDir, err)
	}
	if len(im.Manifests) == 1 {
		return idx, im.Manifests[0], nil
	}
	var names []string
	for _, d := range im.Manifests {
		if tag != "" && d.Annotations[ociRefName] == tag {
			return idx, d, nil
		}
		names = append(names, d.Annotations[ociRefName])
	}
	return nil, v1.Descriptor{}, fmt.Errorf("%s/index.json has %d manifests (tags %s), none tagged %q",
		layoutDir, len(im.Manifests), strings.Join(names, ", "), tag)
}
