package content

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// GCStore is what garbage collection needs: walk, read and delete blobs.
type GCStore interface {
	Manager
	Provider
}

// GC deletes every committed blob that is neither reachable from roots nor
// protected, and returns the digests it removed, sorted as the store walks
// them. protect (may be nil) keeps blobs the caller still needs but that no
// root reaches yet, such as the layers of a pull in flight.
//
// Marking reads every reachable manifest; a corrupt one aborts the
// collection before anything is deleted, since its children are unknown. An
// absent root protects nothing and is not an error.
func GC(ctx context.Context, store GCStore, roots []ocispec.Descriptor, protect func(digest.Digest) bool) ([]digest.Digest, error) {
	marked := map[digest.Digest]bool{}
	err := WalkRefs(ctx, store, roots, func(_ context.Context, desc, _ ocispec.Descriptor) error {
		marked[desc.Digest] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: mark: %w", err)
	}
	var sweep []digest.Digest
	err = store.Walk(ctx, func(info Info) error {
		if !marked[info.Digest] && (protect == nil || !protect(info.Digest)) {
			sweep = append(sweep, info.Digest)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gc: walk: %w", err)
	}
	removed := make([]digest.Digest, 0, len(sweep))
	for _, d := range sweep {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		// protect is asked again: a pull may have started since the walk.
		if protect != nil && protect(d) {
			continue
		}
		if err := store.Delete(ctx, d); err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return removed, fmt.Errorf("gc: delete %s: %w", d, err)
		}
		removed = append(removed, d)
	}
	if len(removed) > 0 {
		slog.DebugContext(ctx, "content gc", "removed", len(removed), "kept", len(marked))
	}
	return removed, nil
}
