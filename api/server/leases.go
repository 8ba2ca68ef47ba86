package server

import (
	"context"
	"fmt"
	"time"

	leasesapi "berth.dev/berth/api/leases/v1"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Leases serves the leases API.
type Leases struct {
	Node node.Leases
	// DB answers Get from the lease records.
	DB *observed.DB
}

var _ leasesapi.LeasesService = (*Leases)(nil)

// withRequestLease carries the lease a call's metadata names into the
// node's operations. The unary interceptor applies it; streaming handlers
// (which ttrpc 1.2 passes no interceptor) call it themselves.
func withRequestLease(ctx context.Context) context.Context {
	if id, ok := ttrpc.GetMetadataValue(ctx, leasesapi.MetadataKey); ok && id != "" {
		return node.WithLease(ctx, id)
	}
	return ctx
}

// toLease leaves ExpiresAt unset for a lease without expiry, as a zero
// time would read as already expired.
func toLease(l observed.Lease) *leasesapi.Lease {
	out := &leasesapi.Lease{Id: l.ID, Labels: l.Labels, CreatedAt: timestamppb.New(l.CreatedAt)}
	if !l.Expires.IsZero() {
		out.ExpiresAt = timestamppb.New(l.Expires)
	}
	return out
}

// defaultNS lets clients that predate namespaces (containerd's ctr
// without -n) work in the default namespace; every service of this
// package that takes a namespace goes through it.
func defaultNS(ns string) string {
	if ns == "" {
		return spec.DefaultNamespace
	}
	return ns
}

// Create refuses a negative expiry rather than reading it as "never":
// a client bug should not pin content forever.
func (s *Leases) Create(ctx context.Context, r *leasesapi.CreateLeaseRequest) (*leasesapi.CreateLeaseResponse, error) {
	if r.ExpiresSeconds < 0 {
		return nil, fmt.Errorf("lease expiry %ds is negative: %w", r.ExpiresSeconds, errdefs.ErrInvalidArgument)
	}
	l, err := s.Node.CreateLease(ctx, defaultNS(r.Namespace), node.LeaseOptions{ID: r.Id, Labels: r.Labels,
		Expires: time.Duration(r.ExpiresSeconds) * time.Second})
	if err != nil {
		return nil, err
	}
	return &leasesapi.CreateLeaseResponse{Lease: toLease(l)}, nil
}

func (s *Leases) List(ctx context.Context, r *leasesapi.ListLeasesRequest) (*leasesapi.ListLeasesResponse, error) {
	ls, err := s.Node.ListLeases(ctx, defaultNS(r.Namespace))
	if err != nil {
		return nil, err
	}
	resp := &leasesapi.ListLeasesResponse{}
	for _, l := range ls {
		resp.Leases = append(resp.Leases, toLease(l))
	}
	return resp, nil
}

// Delete with sync runs a collection at once, so what the lease alone
// kept is gone when the call returns (tests and disk-full recovery rely
// on that).
func (s *Leases) Delete(ctx context.Context, r *leasesapi.DeleteLeaseRequest) (*leasesapi.DeleteLeaseResponse, error) {
	if err := s.Node.DeleteLease(ctx, defaultNS(r.Namespace), r.Id, r.Sync); err != nil {
		return nil, err
	}
	return &leasesapi.DeleteLeaseResponse{}, nil
}

// resource maps an API resource to the stored one: a snapshot key of the
// namespace becomes the node's key for it, as the snapshots API does.
func resource(ns string, r *leasesapi.Resource) (observed.LeaseResource, error) {
	if r == nil {
		return observed.LeaseResource{}, fmt.Errorf("lease resource missing: %w", errdefs.ErrInvalidArgument)
	}
	out := observed.LeaseResource{Type: r.Type, ID: r.Id}
	if err := observed.ValidateLeaseResource(out); err != nil {
		return out, err
	}
	if out.Type != observed.ResourceContent && out.Type != observed.ResourceIngests {
		k, err := node.SnapshotRef(ns, r.Id)
		if err != nil {
			return out, err
		}
		out.ID = k
	}
	return out, nil
}

// AddResource and DeleteResource pin or unpin one resource by name, for
// a client that builds something out of several blobs and snapshots.
func (s *Leases) AddResource(ctx context.Context, r *leasesapi.AddResourceRequest) (*leasesapi.AddResourceResponse, error) {
	ns := defaultNS(r.Namespace)
	res, err := resource(ns, r.Resource)
	if err != nil {
		return nil, err
	}
	if err := s.Node.AddLeaseResources(ctx, ns, r.Id, res); err != nil {
		return nil, err
	}
	return &leasesapi.AddResourceResponse{}, nil
}

func (s *Leases) DeleteResource(ctx context.Context, r *leasesapi.DeleteResourceRequest) (*leasesapi.DeleteResourceResponse, error) {
	ns := defaultNS(r.Namespace)
	res, err := resource(ns, r.Resource)
	if err != nil {
		return nil, err
	}
	if err := s.Node.RemoveLeaseResources(ctx, ns, r.Id, res); err != nil {
		return nil, err
	}
	return &leasesapi.DeleteResourceResponse{}, nil
}

// ListResources reads the record, not the node: the resources are data
// of the lease itself.
func (s *Leases) ListResources(ctx context.Context, r *leasesapi.ListResourcesRequest) (*leasesapi.ListResourcesResponse, error) {
	ns := defaultNS(r.Namespace)
	l, err := s.DB.GetLease(ctx, ns, r.Id)
	if err != nil {
		return nil, err
	}
	resp := &leasesapi.ListResourcesResponse{}
	for _, res := range l.Resources {
		id := res.ID
		if res.Type != observed.ResourceContent && res.Type != observed.ResourceIngests {
			if k, ok := node.UserKey(ns, id); ok {
				id = k
			}
		}
		resp.Resources = append(resp.Resources, &leasesapi.Resource{Id: id, Type: res.Type})
	}
	return resp, nil
}
