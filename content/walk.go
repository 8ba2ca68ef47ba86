package content

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxDepth bounds how deep indexes may nest (index → index → … → manifest).
const MaxDepth = 8

// ErrSkipChildren, returned by a RefFunc, stops the walk from descending
// below that descriptor.
var ErrSkipChildren = errors.New("skip children")

// RefFunc sees one reachable descriptor. parent is the manifest or index that
// listed it (the zero Descriptor for a root).
type RefFunc func(ctx context.Context, desc ocispec.Descriptor, parent ocispec.Descriptor) error

// WalkRefs calls fn once per digest reachable from roots, parents before
// children, breadth first. Manifests and indexes are read from p to find
// their children. A manifest or index that is absent from p is still passed
// to fn but not descended: a single-platform pull fetches one manifest of an
// index, and fn decides whether an absence matters (check with p).
func WalkRefs(ctx context.Context, p Provider, roots []ocispec.Descriptor, fn RefFunc) error {
	type item struct {
		desc, parent ocispec.Descriptor
		depth        int
	}
	seen := map[digest.Digest]bool{}
	queue := make([]item, 0, len(roots))
	for _, r := range roots {
		queue = append(queue, item{desc: r})
	}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := queue[0]
		queue = queue[1:]
		if err := ValidateDescriptor(it.desc); err != nil {
			return err
		}
		if seen[it.desc.Digest] {
			continue
		}
		seen[it.desc.Digest] = true
		if err := fn(ctx, it.desc, it.parent); err != nil {
			if errors.Is(err, ErrSkipChildren) {
				continue
			}
			return err
		}
		if !IsManifest(it.desc.MediaType) && !IsIndex(it.desc.MediaType) {
			continue
		}
		if it.depth >= MaxDepth {
			return fmt.Errorf("blob %s: nested deeper than %d levels: %w", it.desc.Digest, MaxDepth, errdefs.ErrInvalidArgument)
		}
		children, err := Children(ctx, p, it.desc)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		for _, c := range children {
			queue = append(queue, item{desc: c, parent: it.desc, depth: it.depth + 1})
		}
	}
	return nil
}
