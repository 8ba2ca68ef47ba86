package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBlobSignals(t *testing.T) {
	ctx := context.Background()
	layer0, layer1 := digest.FromString("layer0"), digest.FromString("layer1")
	s := newBlobSignals()

	waited := make(chan error, 1)
	go func() { waited <- s.wait(ctx, layer0) }()
	select {
	case err := <-waited:
		t.Fatalf("wait returned before the blob was committed: %v", err)
	case <-time.After(20 * time.Millisecond): // nothing may arrive meanwhile
	}
	s.committed(ocispec.Descriptor{Digest: layer0})
	s.committed(ocispec.Descriptor{Digest: layer0}) // a second report is harmless
	if err := <-waited; err != nil {
		t.Fatalf("wait after commit: %v", err)
	}
	select {
	case <-s.first:
	default:
		t.Error("first commit not signalled")
	}

	close(s.done) // the pull ended without layer1
	if err := s.wait(ctx, layer1); !errdefs.IsUnavailable(err) {
		t.Errorf("wait for a blob the pull never brought: got %v, want unavailable", err)
	}
	if err := s.wait(ctx, layer0); err != nil {
		t.Errorf("a committed blob after the pull ended: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := newBlobSignals().wait(cctx, layer1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: got %v", err)
	}
}
