package ocilayout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Import imports path: an OCI layout directory, or a file holding an OCI
// archive or a docker save tarball (plain or gzipped).
func Import(ctx context.Context, s Store, p string) ([]Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if fi.IsDir() {
		return ImportLayout(ctx, s, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	defer f.Close()
	images, err := ImportArchive(ctx, s, f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	return images, nil
}

// ImportLayout copies the images of the OCI layout in dir into s. Blob
// files are opened through an os.Root, so a symlink in the layout cannot
// make us read outside it.
func ImportLayout(ctx context.Context, s Store, dir string) ([]Image, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	defer root.Close()
	read := func(name string) ([]byte, error) {
		f, err := root.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f, name)
	}
	if b, err := read(ocispec.ImageLayoutFile); err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	} else if err := checkLayoutVersion(b); err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	b, err := read("index.json")
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	images, err := imagesFromIndex(b)
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	roots := make([]ocispec.Descriptor, 0, len(images))
	for _, im := range images {
		roots = append(roots, im.Target)
	}
	// Parents are written before their children are listed, so the walk
	// reads manifests from the store, verified.
	err = content.WalkRefs(ctx, s, roots, func(ctx context.Context, desc, parent ocispec.Descriptor) error {
		if has(ctx, s, desc) {
			return nil
		}
		f, err := root.Open(path.Join(ocispec.ImageBlobsDir, desc.Digest.Algorithm().String(), desc.Digest.Encoded()))
		if errors.Is(err, fs.ErrNotExist) && content.IsIndex(parent.MediaType) {
			return content.ErrSkipChildren
		}
		if err != nil {
			return fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		defer f.Close()
		_, err = writeBlob(ctx, s, desc, f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	if err := checkImages(ctx, s, images); err != nil {
		return nil, fmt.Errorf("layout %s: %w", dir, err)
	}
	return images, nil
}

// checkImages refuses an image that is a single manifest berth could not
// run. An index's platform manifests are checked when one is chosen (the
// node's image record), since an index may also hold attestations.
func checkImages(ctx context.Context, p content.Provider, images []Image) error {
	for _, im := range images {
		if !content.IsManifest(im.Target.MediaType) {
			continue
		}
		if _, err := content.ReadImageManifest(ctx, p, im.Target); err != nil {
			return err
		}
	}
	return nil
}

func readBounded(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxJSONSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJSONSize {
		return nil, fmt.Errorf("%s exceeds %d bytes: %w", name, maxJSONSize, errdefs.ErrFailedPrecondition)
	}
	return b, nil
}

func checkLayoutVersion(b []byte) error {
	var l ocispec.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("oci-layout: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("oci-layout version %q, want %q: %w", l.Version, ocispec.ImageLayoutVersion, errdefs.ErrNotImplemented)
	}
	return nil
}

// imagesFromIndex lists the named roots of a layout's index.json.
func imagesFromIndex(b []byte) ([]Image, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if len(idx.Manifests) > content.MaxChildren {
		return nil, fmt.Errorf("index.json: %d entries, limit %d: %w", len(idx.Manifests), content.MaxChildren, errdefs.ErrInvalidArgument)
	}
	images := make([]Image, 0, len(idx.Manifests))
	for _, d := range idx.Manifests {
		if err := content.ValidateDescriptor(d); err != nil {
			return nil, fmt.Errorf("index.json: %w", err)
		}
		if !content.IsManifest(d.MediaType) && !content.IsIndex(d.MediaType) {
			continue // artifacts we do not run
		}
		images = append(images, Image{Name: d.Annotations[ocispec.AnnotationRefName], Target: d})
	}
	return images, nil
}
