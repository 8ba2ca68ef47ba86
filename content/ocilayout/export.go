package ocilayout

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// epoch is every entry's mtime, so that the same images give the same bytes.
var epoch = time.Unix(0, 0).UTC()

// Export writes images as an OCI archive (a tar of an OCI image layout) to
// w. The output is deterministic: index entries sorted by name then digest,
// blobs sorted by digest, fixed mtimes, owners and modes. Each blob is
// re-verified as it is copied. A manifest listed by an index but absent
// from p (a single-platform pull) is left out; anything else absent is
// errdefs.ErrNotFound.
func Export(ctx context.Context, p content.Provider, w io.Writer, images []Image) error {
	images = slices.Clone(images)
	slices.SortFunc(images, func(a, b Image) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Target.Digest.String(), b.Target.Digest.String())
	})
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	roots := make([]ocispec.Descriptor, 0, len(images))
	for _, im := range images {
		d := im.Target
		if err := content.ValidateDescriptor(d); err != nil {
			return fmt.Errorf("export %s: %w", im.Name, err)
		}
		d.Annotations = maps.Clone(d.Annotations)
		if im.Name != "" {
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations[ocispec.AnnotationRefName] = im.Name
		}
		idx.Manifests = append(idx.Manifests, d)
		roots = append(roots, im.Target)
	}
	blobs := map[digest.Digest]ocispec.Descriptor{}
	err := content.WalkRefs(ctx, p, roots, func(ctx context.Context, desc, parent ocispec.Descriptor) error {
		if !has(ctx, p, desc) {
			if content.IsIndex(parent.MediaType) {
				return content.ErrSkipChildren
			}
			return fmt.Errorf("blob %s (%s): %w", desc.Digest, desc.MediaType, errdefs.ErrNotFound)
		}
		blobs[desc.Digest] = desc
		return nil
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}

	tw := tar.NewWriter(w)
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	index, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{ocispec.ImageLayoutFile, layout}, {"index.json", index}} {
		if err := writeFile(tw, f.name, int64(len(f.data)), bytes.NewReader(f.data)); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: epoch}); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	for _, d := range slices.Sorted(maps.Keys(blobs)) {
		if err := exportBlob(ctx, p, tw, blobs[d]); err != nil {
			return fmt.Errorf("export: blob %s: %w", d, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func writeFile(tw *tar.Writer, name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: epoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := io.Copy(tw, r)
	return err
}

func exportBlob(ctx context.Context, p content.Provider, tw *tar.Writer, desc ocispec.Descriptor) error {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return err
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return fmt.Errorf("stored size %d, descriptor says %d: %w", ra.Size(), desc.Size, errdefs.ErrFailedPrecondition)
	}
	h := digest.SHA256.Digester()
	r := io.TeeReader(content.NewReader(ra), h.Hash())
	if err := writeFile(tw, "blobs/sha256/"+desc.Digest.Encoded(), desc.Size, r); err != nil {
		return err
	}
	if got := h.Digest(); got != desc.Digest {
		return fmt.Errorf("stored bytes hash to %s: %w", got, errdefs.ErrDataLoss)
	}
	return nil
}
