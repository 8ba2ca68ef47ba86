package ocilayout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is what an import writes into.
type Store interface {
	content.Ingester
	content.Provider
}

// Bounds on what an archive may make us hold in memory or walk.
const (
	maxJSONSize    = content.MaxManifestSize
	maxJSONTotal   = 64 << 20
	maxEntries     = 100000
	maxPathLen     = 4096
	writerWaitStep = 50 * time.Millisecond
)

// writeBlob copies r into the store. With desc.Digest set the store checks
// it; without, the digest is computed and returned. A blob already present
// is not written again.
func writeBlob(ctx context.Context, s Store, desc ocispec.Descriptor, r io.Reader) (ocispec.Descriptor, error) {
	ref := "import-" + desc.Digest.String()
	if desc.Digest == "" {
		var rnd [8]byte
		rand.Read(rnd[:])
		ref = "import-" + hex.EncodeToString(rnd[:])
	}
	var w content.Writer
	for {
		var err error
		w, err = s.Writer(ctx, ref, desc)
		if errdefs.IsAlreadyExists(err) {
			return desc, nil
		}
		if errdefs.IsUnavailable(err) {
			// Another import or pull writes this blob; wait for it.
			select {
			case <-ctx.Done():
				return desc, ctx.Err()
			case <-time.After(writerWaitStep):
			}
			continue
		}
		if err != nil {
			return desc, err
		}
		break
	}
	defer w.Close()
	// A stale partial ingest under the same ref is not ours to resume: the
	// reader starts at 0.
	if err := w.Truncate(0); err != nil {
		return desc, err
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return desc, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if desc.Size > 0 && n != desc.Size {
		return desc, fmt.Errorf("blob %s: %d bytes, expected %d: %w", desc.Digest, n, desc.Size, errdefs.ErrFailedPrecondition)
	}
	desc.Size = n
	if desc.Digest == "" {
		desc.Digest = w.Digest()
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return desc, err
	}
	return desc, nil
}

// has reports whether the store holds d.
func has(ctx context.Context, p content.Provider, d ocispec.Descriptor) bool {
	ra, err := p.ReaderAt(ctx, d)
	if err != nil {
		return false
	}
	ra.Close()
	return true
}

// checkComplete makes sure every blob images need is in the store. A
// manifest listed by an index may be absent (a single-platform save).
func checkComplete(ctx context.Context, p content.Provider, images []Image) error {
	roots := make([]ocispec.Descriptor, 0, len(images))
	for _, im := range images {
		roots = append(roots, im.Target)
	}
	return content.WalkRefs(ctx, p, roots, func(ctx context.Context, desc, parent ocispec.Descriptor) error {
		if has(ctx, p, desc) {
			return nil
		}
		if content.IsIndex(parent.MediaType) {
			return content.ErrSkipChildren
		}
		return fmt.Errorf("blob %s (%s) is missing: %w", desc.Digest, desc.MediaType, errdefs.ErrNotFound)
	})
}

func digestOf(b []byte) digest.Digest { return digest.SHA256.FromBytes(b) }
