package shim

import (
	"context"

	"berth.dev/berth/shim/bundle"
	"github.com/containerd/ttrpc"
)

// toWire is the server's interceptor: the one place classes meet codes
// (the table is bundle's, shared with the client).
func toWire(ctx context.Context, u ttrpc.Unmarshaler, _ *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
	resp, err := m(ctx, u)
	return resp, bundle.ToWire(err)
}
