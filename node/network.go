package node

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"berth.dev/berth/network"
	"berth.dev/berth/oci"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// Networker attaches containers to networks: network.Manager, or a fake in
// unit tests. The node attaches a bridged container when it is created
// (so a port clash fails the create, and the address is in its status),
// again before its task is created (which finds the attachment in place,
// or makes it again after a reboot or a crash), and detaches it when the
// container is deleted.
type Networker interface {
	Attach(ctx context.Context, req network.Request) (network.Attachment, error)
	Detach(ctx context.Context, ns, id string) error
	// Get is a container's attachment (errdefs.ErrNotFound without one).
	Get(ns, id string) (network.Attachment, error)
	// Recover detaches what a crash left half done and what no container
	// owns (exists says which containers exist).
	Recover(ctx context.Context, exists func(ns, id string) bool) error
	Stats(ns, id string) (network.Stats, error)
	// FilesDir holds a container's hosts, resolv.conf and hostname.
	FilesDir(ns, id string) string
}

// NetworkSettings put a container on a network of its own namespace: the
// built-in "bridge", a declared Network, or a conflist of that name in
// berthd's CNI configuration directory.
type NetworkSettings struct {
	Name  string                `json:"name"`
	Ports []network.PortMapping `json:"ports,omitempty"`
	DNS   network.DNS           `json:"dns,omitzero"`
	Hosts []network.Host        `json:"hosts,omitempty"`
}

// NetworkFromSpec is the network part of a container's settings from its
// spec (nil for host and none): the one translation the controllers use
// for a manifest and api/server for `berth run --network -p`, so a port
// means the same from either.
func NetworkFromSpec(cs spec.ContainerSpec) *NetworkSettings {
	if !cs.Network.Bridged() {
		return nil
	}
	s := &NetworkSettings{Name: string(cs.Network)}
	for _, p := range cs.Ports {
		s.Ports = append(s.Ports, network.PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol, HostIP: p.HostIP})
	}
	if cs.DNS != nil {
		s.DNS = network.DNS{Servers: cs.DNS.Servers, Searches: cs.DNS.Searches, Options: cs.DNS.Options}
	}
	for _, h := range cs.Hosts {
		s.Hosts = append(s.Hosts, network.Host{IP: h.IP, Hostnames: h.Hostnames})
	}
	return s
}

// networkFiles are the files of a container's network bind-mounted into
// it, by their name in network.Manager.FilesDir.
var networkFiles = map[string]string{"hosts": "/etc/hosts", "resolv.conf": "/etc/resolv.conf", "hostname": "/etc/hostname"}

func (n *Node) networker() (Networker, error) {
	if n.opts.Network == nil {
		return nil, fmt.Errorf("bridged networks are not configured on this node (berthd --cni-bin-dir/--cni-conf-dir): %w", errdefs.ErrFailedPrecondition)
	}
	return n.opts.Network, nil
}

// attach puts a container with network settings on its network.
func (n *Node) attach(ctx context.Context, ns, id string, s ContainerSettings) (network.Attachment, error) {
	nw, err := n.networker()
	if err != nil {
		return network.Attachment{}, err
	}
	a, err := nw.Attach(ctx, network.Request{Namespace: ns, ID: id, Network: s.Network.Name, Hostname: s.Hostname,
		Ports: s.Network.Ports, DNS: s.Network.DNS, Hosts: s.Network.Hosts})
	if err != nil {
		return a, fmt.Errorf("container %s: %w", id, err)
	}
	return a, nil
}

// withNetwork is the settings a bridged container's spec is generated
// from: its namespace joined, its network files bind-mounted (read-only:
// berth rewrites hosts in place as peers come and go).
func (n *Node) withNetwork(ns, id string, s oci.Settings, a network.Attachment) oci.Settings {
	s.NetNSPath = a.NetNS
	s.Mounts = append([]oci.Mount(nil), s.Mounts...)
	dir := n.opts.Network.FilesDir(ns, id)
	for _, name := range []string{"hosts", "resolv.conf", "hostname"} {
		s.Mounts = append(s.Mounts, oci.Mount{Type: oci.MountBind, Source: filepath.Join(dir, name), Target: networkFiles[name], ReadOnly: true})
	}
	return s
}

// withNetworkFilesOf bind-mounts the network files of container owner
// (whose namespace s joins) at the targets no mount of s covers. hosts is
// writable, as containerd mounts it in pods: the pod's containers share it.
func (n *Node) withNetworkFilesOf(ns, owner string, s oci.Settings) oci.Settings {
	given := map[string]bool{}
	for _, m := range s.Mounts {
		given[filepath.Clean(m.Target)] = true
	}
	s.Mounts = append([]oci.Mount(nil), s.Mounts...)
	dir := n.opts.Network.FilesDir(ns, owner)
	for _, name := range []string{"hosts", "resolv.conf", "hostname"} {
		if !given[networkFiles[name]] {
			s.Mounts = append(s.Mounts, oci.Mount{Type: oci.MountBind, Source: filepath.Join(dir, name), Target: networkFiles[name], ReadOnly: name != "hosts"})
		}
	}
	return s
}

// storedNetwork is the network settings of a container record, nil for
// host and none.
func storedNetwork(raw json.RawMessage) (ContainerSettings, bool) {
	var s ContainerSettings
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil || s.Network == nil {
		return s, false
	}
	return s, true
}

// ContainerNetwork is a container's attachment, if it has one.
func (n *Node) ContainerNetwork(ns, id string) (network.Attachment, bool) {
	if n.opts.Network == nil {
		return network.Attachment{}, false
	}
	a, err := n.opts.Network.Get(ns, id)
	return a, err == nil
}

// NetworkStats are a bridged container's rx/tx counters.
func (n *Node) NetworkStats(ns, id string) (network.Stats, error) {
	nw, err := n.networker()
	if err != nil {
		return network.Stats{}, err
	}
	return nw.Stats(ns, id)
}

// RecoverNetworks, at start, detaches what a crash left half attached and
// what belongs to no container any more; attachments of existing
// containers (running ones included) keep their addresses.
func (n *Node) RecoverNetworks(ctx context.Context) error {
	if n.opts.Network == nil {
		return nil
	}
	return n.opts.Network.Recover(ctx, func(ns, id string) bool {
		_, err := n.opts.DB.GetContainer(ctx, ns, id)
		return err == nil
	})
}
