package server

import (
	"context"
	"fmt"
	"io"

	contentapi "berth.dev/berth/api/content/v1"
	"berth.dev/berth/content"
	"berth.dev/berth/node"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxRead bounds one Read call's answer.
//
// A client reads a large blob in pieces with offsets; one answer never
// holds more than this, whatever the client asked.
const maxRead = 1 << 20

// Content serves the content store.
type Content struct {
	// Store is the blob store itself: this service reads and deletes
	// blobs by digest, the containerd content API's contract, so it needs
	// no operation of the node's beyond Prune.
	Store content.Store
	Node  node.Images
}

var _ contentapi.ContentService = (*Content)(nil)

// toInfo passes the labels on: garbage collection roots and the
// uncompressed digest live there.
func toInfo(i content.Info) *contentapi.Info {
	return &contentapi.Info{Digest: i.Digest.String(), Size: i.Size, Labels: i.Labels,
		CreatedAt: timestamppb.New(i.CreatedAt), UpdatedAt: timestamppb.New(i.UpdatedAt)}
}

// Info parses the digest strictly first, so a malformed one is
// InvalidArgument and never becomes a path under the store.
func (s *Content) Info(ctx context.Context, r *contentapi.InfoRequest) (*contentapi.InfoResponse, error) {
	d, err := content.ParseDigest(r.Digest)
	if err != nil {
		return nil, err
	}
	info, err := s.Store.Info(ctx, d)
	if err != nil {
		return nil, err
	}
	return &contentapi.InfoResponse{Info: toInfo(info)}, nil
}

func (s *Content) List(ctx context.Context, _ *contentapi.ListContentRequest) (*contentapi.ListContentResponse, error) {
	resp := &contentapi.ListContentResponse{}
	err := s.Store.Walk(ctx, func(i content.Info) error {
		resp.Info = append(resp.Info, toInfo(i))
		return nil
	})
	return resp, err
}

// Read is by offset and size rather than a stream so a client can resume
// or read one part (a manifest's first bytes) cheaply.
func (s *Content) Read(ctx context.Context, r *contentapi.ReadContentRequest) (*contentapi.ReadContentResponse, error) {
	d, err := content.ParseDigest(r.Digest)
	if err != nil {
		return nil, err
	}
	ra, err := s.Store.ReaderAt(ctx, ocispec.Descriptor{Digest: d})
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	size := r.Size
	if size <= 0 || size > maxRead {
		size = maxRead
	}
	if r.Offset < 0 || r.Offset > ra.Size() {
		return nil, fmt.Errorf("offset %d outside blob %s of %d bytes: %w", r.Offset, d, ra.Size(), errdefs.ErrInvalidArgument)
	}
	if rest := ra.Size() - r.Offset; size > rest {
		size = rest
	}
	buf := make([]byte, size)
	n, err := ra.ReadAt(buf, r.Offset)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return &contentapi.ReadContentResponse{Offset: r.Offset, Data: buf[:n]}, nil
}

// Delete removes a blob even if an image references it (containerd's
// contract: the caller knows); Prune is the safe way to reclaim space.
func (s *Content) Delete(ctx context.Context, r *contentapi.DeleteContentRequest) (*contentapi.DeleteContentResponse, error) {
	d, err := content.ParseDigest(r.Digest)
	if err != nil {
		return nil, err
	}
	if err := s.Store.Delete(ctx, d); err != nil {
		return nil, err
	}
	return &contentapi.DeleteContentResponse{}, nil
}

// ListStatuses shows the ingests in progress or left by a failed pull,
// which is where the space a pull took goes when it did not finish.
func (s *Content) ListStatuses(ctx context.Context, _ *contentapi.ListStatusesRequest) (*contentapi.ListStatusesResponse, error) {
	sts, err := s.Store.ListStatuses(ctx)
	if err != nil {
		return nil, err
	}
	resp := &contentapi.ListStatusesResponse{}
	for _, st := range sts {
		resp.Statuses = append(resp.Statuses, &contentapi.Status{Ref: st.Ref, Offset: st.Offset, Total: st.Total,
			Expected: st.Expected.String(), StartedAt: timestamppb.New(st.StartedAt), UpdatedAt: timestamppb.New(st.UpdatedAt)})
	}
	return resp, nil
}

// Prune is the node's collection, which honours leases and every
// namespace's images; dry run says what it would remove.
func (s *Content) Prune(ctx context.Context, r *contentapi.PruneRequest) (*contentapi.PruneResponse, error) {
	res, err := s.Node.Prune(ctx, r.DryRun)
	resp := &contentapi.PruneResponse{Bytes: res.Bytes, RemovedSnapshots: res.Snapshots, RemovedIngests: res.Ingests}
	for _, d := range res.Blobs {
		resp.Removed = append(resp.Removed, d.String())
	}
	return resp, err
}
