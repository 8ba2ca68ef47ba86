package server

import (
	"context"
	"encoding/json"
	"fmt"

	ctrapi "berth.dev/berth/api/containers/v1"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/oci"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Containers serves container records through the node's operations.
type Containers struct {
	Node *node.Node
}

var _ ctrapi.ContainersService = (*Containers)(nil)

func (s *Containers) Create(ctx context.Context, r *ctrapi.CreateContainerRequest) (*ctrapi.CreateContainerResponse, error) {
	settings, err := settingsFromAPI(r.Settings)
	if err != nil {
		return nil, err
	}
	c, err := s.Node.CreateContainer(ctx, r.Namespace, r.Id, r.Image, r.Snapshotter, settings, r.Labels)
	if err != nil {
		return nil, err
	}
	return &ctrapi.CreateContainerResponse{Container: containerToAPI(c)}, nil
}

func (s *Containers) Get(ctx context.Context, r *ctrapi.GetContainerRequest) (*ctrapi.GetContainerResponse, error) {
	c, err := s.Node.DB().GetContainer(ctx, r.Namespace, r.Id)
	if err != nil {
		return nil, err
	}
	return &ctrapi.GetContainerResponse{Container: containerToAPI(c)}, nil
}

func (s *Containers) List(ctx context.Context, r *ctrapi.ListContainersRequest) (*ctrapi.ListContainersResponse, error) {
	if _, err := s.Node.DB().GetNamespace(ctx, r.Namespace); err != nil {
		return nil, err
	}
	cs, err := s.Node.DB().ListContainers(ctx, r.Namespace)
	if err != nil {
		return nil, err
	}
	resp := &ctrapi.ListContainersResponse{}
	for _, c := range cs {
		resp.Containers = append(resp.Containers, containerToAPI(c))
	}
	return resp, nil
}

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
	for i, m := range a.Mounts {
		om, err := oci.ParseMount(m.Type, m.Source, m.Target, false, m.Options)
		if err != nil {
			return s, fmt.Errorf("settings.mounts[%d] (%s): %w", i, m.Target, err)
		}
		s.Mounts = append(s.Mounts, om)
	}
	return s, nil
}

func settingsToAPI(raw json.RawMessage) *ctrapi.Settings {
	var s node.ContainerSettings
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return nil
	}
	a := &ctrapi.Settings{Args: s.Args, Entrypoint: s.Entrypoint, Env: s.Env, WorkingDir: s.WorkingDir, User: s.User,
		Cpus: s.Resources.CPU, MemoryBytes: s.Resources.MemoryBytes, Pids: s.Resources.Pids, NetHost: s.NetworkHost,
		ReadonlyRootfs: s.ReadonlyRootfs, Hostname: s.Hostname, Terminal: s.Terminal, Runtime: s.Runtime, Annotations: s.Annotations,
		Init: s.Init, StopSignal: s.StopSignal}
	for _, m := range s.Mounts {
		am := &ctrapi.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: oci.MountOptions(m)}
		a.Mounts = append(a.Mounts, am)
	}
	return a
}

func containerToAPI(c observed.Container) *ctrapi.Container {
	return &ctrapi.Container{Id: c.ID, Image: c.Image, ImageDigest: c.ImageDigest, Snapshotter: c.Snapshotter,
		SnapshotKey: c.SnapshotKey, Runtime: c.Runtime, Settings: settingsToAPI(c.Settings), Spec: c.Spec,
		Labels: c.Labels, CreatedAt: timestamppb.New(c.CreatedAt), UpdatedAt: timestamppb.New(c.UpdatedAt), SpecHash: c.SpecHash}
}
