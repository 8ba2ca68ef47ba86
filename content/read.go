package content

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize bounds the bytes of a manifest, an index or an image
// config read into memory. Registries cap manifests at 4 MiB too.
const MaxManifestSize = 4 << 20

// NewReader reads ra from its start.
func NewReader(ra ReaderAt) io.Reader {
	return io.NewSectionReader(ra, 0, ra.Size())
}

// ReadBlob reads the whole blob named by desc into memory, refusing blobs
// larger than maxSize, blobs whose stored size differs from desc.Size and
// bytes that do not hash to desc.Digest (the disk can rot after a blob was
// verified; what is parsed must be what was named).
func ReadBlob(ctx context.Context, p Provider, desc ocispec.Descriptor, maxSize int64) ([]byte, error) {
	if err := ValidateDescriptor(desc); err != nil {
		return nil, err
	}
	if desc.Size > maxSize {
		return nil, fmt.Errorf("blob %s: size %d exceeds the limit of %d bytes: %w", desc.Digest, desc.Size, maxSize, errdefs.ErrFailedPrecondition)
	}
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	size := ra.Size()
	if size > maxSize {
		return nil, fmt.Errorf("blob %s: stored size %d exceeds the limit of %d bytes: %w", desc.Digest, size, maxSize, errdefs.ErrFailedPrecondition)
	}
	if desc.Size > 0 && size != desc.Size {
		return nil, fmt.Errorf("blob %s: stored size %d, descriptor says %d: %w", desc.Digest, size, desc.Size, errdefs.ErrFailedPrecondition)
	}
	b := make([]byte, size)
	if _, err := ra.ReadAt(b, 0); err != nil && !(err == io.EOF && size == 0) {
		return nil, fmt.Errorf("blob %s: read: %w", desc.Digest, err)
	}
	if got := digest.SHA256.FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("blob %s: stored bytes hash to %s: %w", desc.Digest, got, errdefs.ErrDataLoss)
	}
	return b, nil
}
