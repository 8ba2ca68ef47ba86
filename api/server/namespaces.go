package server

import (
	"context"

	nsapi "berth.dev/berth/api/namespaces/v1"
	"berth.dev/berth/observed"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Namespaces serves the namespaces API over the observed store.
//
// A namespace is only a record and a prefix: every other store keys by
// it, so creating one costs nothing and deleting one is refused (by the
// store) while anything still lives in it.
type Namespaces struct {
	DB     *observed.DB
	Events observed.Publisher
}

var _ nsapi.NamespacesService = (*Namespaces)(nil)

func toNamespace(n observed.Namespace) *nsapi.Namespace {
	return &nsapi.Namespace{Name: n.Name, Labels: n.Labels, CreatedAt: timestamppb.New(n.CreatedAt)}
}

func (s *Namespaces) Get(ctx context.Context, r *nsapi.GetNamespaceRequest) (*nsapi.GetNamespaceResponse, error) {
	n, err := s.DB.GetNamespace(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	return &nsapi.GetNamespaceResponse{Namespace: toNamespace(n)}, nil
}

func (s *Namespaces) List(ctx context.Context, _ *nsapi.ListNamespacesRequest) (*nsapi.ListNamespacesResponse, error) {
	nss, err := s.DB.ListNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	resp := &nsapi.ListNamespacesResponse{}
	for _, n := range nss {
		resp.Namespaces = append(resp.Namespaces, toNamespace(n))
	}
	return resp, nil
}

// Create publishes /namespaces/create as containerd does, so event
// watchers written for containerd see the same topics.
func (s *Namespaces) Create(ctx context.Context, r *nsapi.CreateNamespaceRequest) (*nsapi.CreateNamespaceResponse, error) {
	n, err := s.DB.CreateNamespace(ctx, observed.Namespace{Name: r.GetNamespace().GetName(), Labels: r.GetNamespace().GetLabels()})
	if err != nil {
		return nil, err
	}
	s.Events.Publish(ctx, n.Name, "/namespaces/create", map[string]any{"name": n.Name, "labels": n.Labels})
	return &nsapi.CreateNamespaceResponse{Namespace: toNamespace(n)}, nil
}

// Delete leaves the refusal of a namespace still in use to the store,
// which checks every bucket in the same transaction as the delete.
func (s *Namespaces) Delete(ctx context.Context, r *nsapi.DeleteNamespaceRequest) (*nsapi.DeleteNamespaceResponse, error) {
	if err := s.DB.DeleteNamespace(ctx, r.Name); err != nil {
		return nil, err
	}
	s.Events.Publish(ctx, r.Name, "/namespaces/delete", map[string]any{"name": r.Name})
	return &nsapi.DeleteNamespaceResponse{}, nil
}
