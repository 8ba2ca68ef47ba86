package node

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"berth.dev/berth/content/ocilayout"
	"berth.dev/berth/observed"
	"github.com/containerd/errdefs"
)

// ImportOptions configure an import.
type ImportOptions struct {
	// Name names the image when the source names none, or overrides its
	// name when it holds a single image.
	Name        string
	Unpack      bool
	Snapshotter string
	Platform    string
	Labels      map[string]string
}

// Import reads an OCI layout directory, an OCI archive or a docker-save
// archive at path into the content store and records its images in ns.
// An import that runs out of space says what stale ingests hold, as a
// pull does.
func (n *Node) Import(ctx context.Context, ns, path string, opts ImportOptions) (_ []observed.Image, err error) {
	defer func() { err = n.explainNoSpace(ctx, err) }()
	// A write to a namespace that does not exist yet creates it, as
	// containerd does; reads of an unknown namespace stay NotFound.
	if _, err := n.opts.DB.EnsureNamespace(ctx, ns); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("import path %q must be absolute: %w", path, errdefs.ErrInvalidArgument)
	}
	platform, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	if err := n.checkLease(ctx, ns); err != nil {
		return nil, err
	}
	release := n.begin(ctx, ns, "import")
	defer release()
	found, err := ocilayout.Import(ctx, n.opts.Content, path)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("import %s: no images in it: %w", path, errdefs.ErrInvalidArgument)
	}
	if opts.Name != "" && len(found) > 1 {
		return nil, fmt.Errorf("import %s: --name given but it holds %d images: %w", path, len(found), errdefs.ErrInvalidArgument)
	}
	var out []observed.Image
	for _, f := range found {
		name := importName(path, f.Name, opts.Name)
		if name == "" {
			return out, fmt.Errorf("import %s: image %s has no name (org.opencontainers.image.ref.name); give one with --name: %w", path, f.Target.Digest, errdefs.ErrInvalidArgument)
		}
		img, err := n.record(ctx, ns, name, f.Target, platform, opts.Labels)
		if err != nil {
			return out, fmt.Errorf("import %s as %s: %w", path, name, err)
		}
		if opts.Unpack {
			if _, err := n.Unpack(ctx, ns, name, opts.Snapshotter, opts.Platform, nil); err != nil {
				return out, err
			}
			if img, err = n.opts.DB.GetImage(ctx, ns, name); err != nil {
				return out, err
			}
		}
		if err := n.leaseImage(ctx, ns, img); err != nil {
			return out, err
		}
		out = append(out, img)
	}
	return out, nil
}

// importName picks an imported image's name: the one asked for, else the
// source's own; a bare tag ("latest", as OCI layouts often hold) is
// qualified by the source's base name ("busybox:latest").
func importName(path, found, asked string) string {
	if asked != "" {
		return asked
	}
	if found == "" || strings.ContainsAny(found, "/:@") {
		return found
	}
	base := strings.ToLower(filepath.Base(path))
	for _, ext := range []string{".tar.gz", ".tgz", ".tar"} {
		base = strings.TrimSuffix(base, ext)
	}
	return base + ":" + found
}

// Export writes the named images of ns as one OCI archive to w.
func (n *Node) Export(ctx context.Context, ns string, names []string, w io.Writer) error {
	var imgs []ocilayout.Image
	for _, name := range names {
		img, err := n.opts.DB.GetImage(ctx, ns, name)
		if err != nil {
			return err
		}
		imgs = append(imgs, ocilayout.Image{Name: img.Name, Target: img.Target})
	}
	release := n.leases.acquire()
	defer release()
	return ocilayout.Export(ctx, n.opts.Content, w, imgs)
}
