package node

import (
	"context"

	"berth.dev/berth/network"
)

// Networker attaches containers to networks: network.Manager, or a fake in
// unit tests. The node attaches a bridged container before its task is
// created and detaches it when the container is deleted.
type Networker interface {
	Attach(ctx context.Context, req network.Request) (network.Attachment, error)
	Detach(ctx context.Context, ns, id string) error
	// Get is a container's attachment (errdefs.ErrNotFound without one).
	Get(ns, id string) (network.Attachment, error)
	// Recover detaches what a crash left half done and what no container
	// owns (exists says which containers exist).
	Recover(ctx context.Context, exists func(ns, id string) bool) error
	Stats(ns, id string) (network.Stats, error)
}
