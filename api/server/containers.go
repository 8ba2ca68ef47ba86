package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	ctrapi "berth.dev/berth/api/containers/v1"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/oci"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Containers serves container records through the node's operations.
type Containers struct {
	Node node.Containers
	// DB answers Get and List from the container records.
	DB *observed.DB
}

var _ ctrapi.ContainersService = (*Containers)(nil)

// Create makes the container record and its rw snapshot; the node checks
// the node policy and attaches a bridged network here, so a port clash
// or a refused setting fails the create, not a later start.
func (s *Containers) Create(ctx context.Context, r *ctrapi.CreateContainerRequest) (*ctrapi.CreateContainerResponse, error) {
	settings, err := settingsFromAPI(r.Settings)
	if err != nil {
		return nil, err
	}
	c, err := s.Node.CreateContainer(ctx, r.Namespace, r.Id, r.Image, r.Snapshotter, settings, r.Labels)
	if err != nil {
		return nil, err
	}
	return &ctrapi.CreateContainerResponse{Container: s.withNetwork(r.Namespace, containerToAPI(c))}, nil
}

// Get adds the live network attachment to the record, which the record
// alone does not carry (addresses are the network's, not the container's).
func (s *Containers) Get(ctx context.Context, r *ctrapi.GetContainerRequest) (*ctrapi.GetContainerResponse, error) {
	c, err := s.DB.GetContainer(ctx, r.Namespace, r.Id)
	if err != nil {
		return nil, err
	}
	return &ctrapi.GetContainerResponse{Container: s.withNetwork(r.Namespace, containerToAPI(c))}, nil
}

// List refuses an unknown namespace, as the image list does.
func (s *Containers) List(ctx context.Context, r *ctrapi.ListContainersRequest) (*ctrapi.ListContainersResponse, error) {
	if _, err := s.DB.GetNamespace(ctx, r.Namespace); err != nil {
		return nil, err
	}
	cs, err := s.DB.ListContainers(ctx, r.Namespace)
	if err != nil {
		return nil, err
	}
	resp := &ctrapi.ListContainersResponse{}
	for _, c := range cs {
		resp.Containers = append(resp.Containers, s.withNetwork(r.Namespace, containerToAPI(c)))
	}
	return resp, nil
}

// Delete goes through the node, which refuses while a task runs and
// removes the snapshot and network attachment with the record.
func (s *Containers) Delete(ctx context.Context, r *ctrapi.DeleteContainerRequest) (*ctrapi.DeleteContainerResponse, error) {
	return &ctrapi.DeleteContainerResponse{}, s.Node.DeleteContainer(ctx, r.Namespace, r.Id)
}

// settingsFromAPI reads a request's settings; its mounts go through
// oci.ParseMount, the rule a manifest's mounts follow, so `berth run
// --mount` and a file mean the same by an option (and neither drops one).
func settingsFromAPI(a *ctrapi.Settings) (node.ContainerSettings, error) {
	if a == nil {
		return node.ContainerSettings{}, nil
	}
	s := node.ContainerSettings{Runtime: a.Runtime, Settings: oci.Settings{
		Args: a.Args, Env: a.Env, WorkingDir: a.WorkingDir, User: a.User,
		Resources:   oci.Resources{CPU: a.Cpus, MemoryBytes: a.MemoryBytes, Pids: a.Pids},
		NetworkHost: a.NetHost, ReadonlyRootfs: a.ReadonlyRootfs, Hostname: a.Hostname,
		Terminal: a.Terminal, Annotations: a.Annotations, Init: a.Init, StopSignal: a.StopSignal,
	}}
	if len(a.Entrypoint) > 0 {
		s.Entrypoint = a.Entrypoint
	}
	switch a.Network {
	case "", string(spec.NetworkNone):
		if len(a.Ports) > 0 {
			return s, fmt.Errorf("settings.ports: publishing ports needs a bridged network (--network bridge): %w", errdefs.ErrInvalidArgument)
		}
	case string(spec.NetworkHost):
		s.NetworkHost = true
	default:
		if !spec.IsDNSLabel(a.Network) {
			return s, fmt.Errorf("settings.network %q: want none, host, bridge or a Network's name: %w", a.Network, errdefs.ErrInvalidArgument)
		}
		if a.NetHost {
			return s, fmt.Errorf("settings: net_host and network %q together: %w", a.Network, errdefs.ErrInvalidArgument)
		}
		// The ports become a Container spec's, defaulted, checked and
		// translated by the manifest's rules (spec.Default,
		// spec.ValidatePorts, node.NetworkFromSpec): -p means what
		// spec.ports means, and is refused for what a file is refused for.
		cs := spec.ContainerSpec{Network: spec.NetworkMode(a.Network)}
		for _, p := range a.Ports {
			cs.Ports = append(cs.Ports, spec.Port{HostIP: p.HostIp, HostPort: int(p.HostPort), ContainerPort: int(p.ContainerPort), Protocol: strings.ToLower(p.Protocol)})
		}
		if d, ok := spec.Default(spec.Object{APIVersion: spec.APIVersion, Kind: spec.KindContainer, Spec: cs}).ContainerSpec(); ok {
			cs.Ports = d.Ports
		}
		if err := spec.ValidatePorts(cs.Network, cs.Ports); err != nil {
			return s, fmt.Errorf("settings: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		s.Network = node.NetworkFromSpec(cs)
	}
	for i, m := range a.Mounts {
		om, err := oci.ParseMount(m.Type, m.Source, m.Target, false, m.Options)
		if err != nil {
			return s, fmt.Errorf("settings.mounts[%d] (%s): %w", i, m.Target, err)
		}
		s.Mounts = append(s.Mounts, om)
	}
	return s, nil
}

// settingsToAPI answers with what the container was made from (its own
// JSON on the record), so berth container info shows the user's request
// and not the generated OCI spec.
func settingsToAPI(raw json.RawMessage) *ctrapi.Settings {
	var s node.ContainerSettings
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return nil
	}
	a := &ctrapi.Settings{Args: s.Args, Entrypoint: s.Entrypoint, Env: s.Env, WorkingDir: s.WorkingDir, User: s.User,
		Cpus: s.Resources.CPU, MemoryBytes: s.Resources.MemoryBytes, Pids: s.Resources.Pids, NetHost: s.NetworkHost,
		ReadonlyRootfs: s.ReadonlyRootfs, Hostname: s.Hostname, Terminal: s.Terminal, Runtime: s.Runtime, Annotations: s.Annotations,
		Init: s.Init, StopSignal: s.StopSignal}
	if s.NetworkHost {
		a.Network = string(spec.NetworkHost)
	}
	if s.Network != nil {
		a.Network = s.Network.Name
		for _, p := range s.Network.Ports {
			a.Ports = append(a.Ports, &ctrapi.PortMapping{HostIp: p.HostIP, HostPort: int32(p.HostPort), ContainerPort: int32(p.ContainerPort), Protocol: p.Protocol})
		}
	}
	for _, m := range s.Mounts {
		am := &ctrapi.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: oci.MountOptions(m)}
		a.Mounts = append(a.Mounts, am)
	}
	return a
}

// containerToAPI carries the generated OCI spec too: it is what runc ran,
// which is what one debugs.
func containerToAPI(c observed.Container) *ctrapi.Container {
	return &ctrapi.Container{Id: c.ID, Image: c.Image, ImageDigest: c.ImageDigest, Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey, Runtime: c.Runtime, Settings: settingsToAPI(c.Settings), Spec: c.Spec,
		Labels: c.Labels, CreatedAt: timestamppb.New(c.CreatedAt), UpdatedAt: timestamppb.New(c.UpdatedAt), SpecHash: c.SpecHash}
}

// withNetwork adds a bridged container's observed network and addresses.
func (s *Containers) withNetwork(ns string, c *ctrapi.Container) *ctrapi.Container {
	if a, ok := s.Node.ContainerNetwork(ns, c.Id); ok {
		c.Network, c.Addresses = a.Network, a.IPs
	}
	return c
}
