package server

import (
	"context"
	"fmt"
	"os"

	netapi "berth.dev/berth/api/networks/v1"
	"berth.dev/berth/network"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// Networks serves the node's CNI networks through network.Manager.
type Networks struct {
	Manager *network.Manager
}

var _ netapi.NetworksService = (*Networks)(nil)

// toAPI shows the built-in network without a namespace: it serves them
// all, and printing "default" would suggest it belongs to one. UsedBy is
// read from the live attachments, the only place that knows it.
func (s *Networks) toAPI(n network.Network) *netapi.Network {
	ns := n.Namespace
	if n.Name == network.BuiltinNetwork {
		ns = ""
	}
	a := &netapi.Network{Name: n.Name, Namespace: ns, CniName: n.CNIName, Bridge: n.Bridge, File: n.File,
		Spec: &netapi.NetworkSpec{Subnet: n.Spec.Subnet, Gateway: n.Spec.Gateway, IpRange: n.Spec.IPRange, IpMasq: n.Spec.IPMasq,
			Isolate: n.Spec.Isolate, Mtu: int32(n.Spec.MTU), Driver: n.Spec.Driver, Master: n.Spec.Master}}
	a.Conflist, _ = os.ReadFile(n.File)
	for _, at := range s.attached() {
		if at.CNIName == n.CNIName {
			a.UsedBy = append(a.UsedBy, at.Namespace+"/"+at.ID)
		}
	}
	return a
}

func (s *Networks) attached() []network.Attachment {
	all, _ := s.Manager.List()
	return all
}

// List always includes the built-in network, which every namespace can
// use.
func (s *Networks) List(ctx context.Context, r *netapi.ListNetworksRequest) (*netapi.ListNetworksResponse, error) {
	nets, err := s.Manager.Networks()
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	ns := defaultNS(r.Namespace)
	resp := &netapi.ListNetworksResponse{}
	for _, n := range nets {
		if n.Name == network.BuiltinNetwork || r.AllNamespaces || n.Namespace == ns {
			resp.Networks = append(resp.Networks, s.toAPI(n))
		}
	}
	return resp, nil
}

// find matches the built-in network from any namespace, a declared one
// only in its own.
func (s *Networks) find(ns, name string) (network.Network, error) {
	nets, err := s.Manager.Networks()
	if err != nil {
		return network.Network{}, err
	}
	for _, n := range nets {
		if n.Name == name && (n.Name == network.BuiltinNetwork || n.Namespace == ns) {
			return n, nil
		}
	}
	return network.Network{}, fmt.Errorf("network %q in namespace %s: %w", name, ns, errdefs.ErrNotFound)
}

func (s *Networks) Get(ctx context.Context, r *netapi.GetNetworkRequest) (*netapi.GetNetworkResponse, error) {
	n, err := s.find(defaultNS(r.Namespace), r.Name)
	if err != nil {
		return nil, err
	}
	return &netapi.GetNetworkResponse{Network: s.toAPI(n)}, nil
}

// Create writes a network's conflist as a declared Network's would be
// (validated the same way); a subnet overlapping another network's is
// refused naming it.
func (s *Networks) Create(ctx context.Context, r *netapi.CreateNetworkRequest) (*netapi.CreateNetworkResponse, error) {
	ns := defaultNS(r.Namespace)
	sp := r.GetSpec()
	ospec := spec.NetworkSpec{Subnet: sp.GetSubnet(), Gateway: sp.GetGateway(), IPRange: sp.GetIpRange(), IPMasq: sp.GetIpMasq(),
		Isolate: sp.GetIsolate(), MTU: int(sp.GetMtu()), Driver: sp.GetDriver(), Master: sp.GetMaster()}
	obj := spec.Object{APIVersion: spec.APIVersion, Kind: spec.KindNetwork, Metadata: spec.Metadata{Name: r.Name, Namespace: ns}, Spec: ospec}
	if err := spec.Validate(obj); err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	nets, err := s.Manager.Networks()
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if n.Name == r.Name && n.Namespace == ns {
			return nil, fmt.Errorf("network %q in namespace %s: %w", r.Name, ns, errdefs.ErrAlreadyExists)
		}
		if network.Overlaps(n.Spec.Subnet, ospec.Subnet) {
			return nil, fmt.Errorf("subnet %s overlaps network %s/%s (%s): %w", ospec.Subnet, n.Namespace, n.Name, n.Spec.Subnet, errdefs.ErrFailedPrecondition)
		}
	}
	n, err := s.Manager.EnsureNetwork(ns, r.Name, network.Spec{Subnet: ospec.Subnet, Gateway: ospec.Gateway, IPRange: ospec.IPRange,
		IPMasq: ospec.IPMasq, Isolate: ospec.Isolate, MTU: ospec.MTU, Driver: ospec.Driver, Master: ospec.Master})
	if err != nil {
		return nil, err
	}
	return &netapi.CreateNetworkResponse{Network: s.toAPI(n)}, nil
}

// Delete refuses the built-in network (containers of every namespace
// rely on it); the manager refuses a network still in use.
func (s *Networks) Delete(ctx context.Context, r *netapi.DeleteNetworkRequest) (*netapi.DeleteNetworkResponse, error) {
	ns := defaultNS(r.Namespace)
	if r.Name == network.BuiltinNetwork {
		return nil, fmt.Errorf("network %q is built in: %w", r.Name, errdefs.ErrFailedPrecondition)
	}
	if _, err := s.find(ns, r.Name); err != nil {
		return nil, err
	}
	if err := s.Manager.RemoveNetwork(ns, r.Name); err != nil {
		return nil, err
	}
	return &netapi.DeleteNetworkResponse{}, nil
}
