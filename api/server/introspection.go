package server

import (
	"context"
	"runtime"
	"time"

	introapi "berth.dev/berth/api/introspection/v1"
	"berth.dev/berth/version"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Introspection answers what berthd is and where it keeps its state.
//
// It answers from what berthd was started with, never from the stores, so
// `berth version` works even when a store is wedged.
type Introspection struct {
	Root, State  string
	StartedAt    time.Time
	Snapshotters []string
}

var _ introapi.IntrospectionService = (*Introspection)(nil)

// Version carries the root and state paths so a client can tell which of
// several berthds (tests run many) it is talking to.
func (s *Introspection) Version(ctx context.Context, _ *introapi.VersionRequest) (*introapi.VersionResponse, error) {
	return &introapi.VersionResponse{
		Version:      version.Version,
		GoVersion:    runtime.Version(),
		Root:         s.Root,
		State:        s.State,
		StartedAt:    timestamppb.New(s.StartedAt),
		Snapshotters: s.Snapshotters,
	}, nil
}
