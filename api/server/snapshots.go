package server

import (
	"context"

	snapi "berth.dev/berth/api/snapshots/v1"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/snapshot"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Snapshots serves the snapshotters, scoping keys to the namespace.
type Snapshots struct {
	Node node.Snapshots
	// DB is asked whether a request's namespace exists, so no snapshot is
	// made for a namespace nobody created.
	DB     *observed.DB
	Events observed.Publisher
}

var _ snapi.SnapshotsService = (*Snapshots)(nil)

// keyKind says how a key of a request is mapped: one the namespace writes
// (never an image layer) or one it reads or builds on (its own, or a layer).
type keyKind int

const (
	writeKey keyKind = iota
	readKey
)

// key is one key of a request and how it may be used.
type key struct {
	name string
	kind keyKind
}

// resolve is the one place a request's keys become the snapshotter's: a
// key the namespace writes is always prefixed with it (so it can never
// name, commit over or remove an image layer or another namespace's
// snapshot), and a key it reads may also be a layer's chain ID (so it can
// build on images). Every handler goes through it, which is what makes
// the namespace a boundary here.
func (s *Snapshots) resolve(ctx context.Context, ns, snapshotter string, keys ...key) (snapshot.Snapshotter, []string, error) {
	if _, err := s.DB.GetNamespace(ctx, ns); err != nil {
		return nil, nil, err
	}
	sn, _, err := s.Node.Snapshotter(snapshotter)
	if err != nil {
		return nil, nil, err
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		if k.name == "" && k.kind == readKey { // an empty parent
			continue
		}
		if k.kind == writeKey {
			out[i], err = node.SnapshotKey(ns, k.name)
		} else {
			out[i], err = node.SnapshotRef(ns, k.name)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return sn, out, nil
}

// toMounts returns mounts for the client to perform: berthd mounts
// nothing on a client's behalf through this API.
func toMounts(ms []snapshot.Mount) *snapi.MountsResponse {
	resp := &snapi.MountsResponse{}
	for _, m := range ms {
		resp.Mounts = append(resp.Mounts, &snapi.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	return resp
}

// toInfo strips the namespace prefix again, so a client sees the key it
// gave; a layer's chain ID comes back as it is.
func (s *Snapshots) toInfo(ns string, info snapshot.Info) *snapi.Info {
	name, _ := node.UserKey(ns, info.Name)
	parent, _ := node.UserKey(ns, info.Parent)
	return &snapi.Info{Name: name, Parent: parent, Kind: info.Kind.String(), Labels: info.Labels,
		CreatedAt: timestamppb.New(info.Created), UpdatedAt: timestamppb.New(info.Updated)}
}

// Prepare and View publish containerd's topics (a view is a prepare with
// kind view) so event watchers need no berth-specific case.
func (s *Snapshots) Prepare(ctx context.Context, r *snapi.PrepareSnapshotRequest) (*snapi.MountsResponse, error) {
	sn, keys, err := s.resolve(ctx, r.Namespace, r.Snapshotter, key{r.Key, writeKey}, key{r.Parent, readKey})
	if err != nil {
		return nil, err
	}
	ms, err := sn.Prepare(ctx, keys[0], keys[1], snapshot.WithLabels(r.Labels))
	if err != nil {
		return nil, err
	}
	s.Events.Publish(ctx, r.Namespace, "/snapshot/prepare", map[string]string{"key": r.Key, "parent": r.Parent, "snapshotter": r.Snapshotter})
	return toMounts(ms), nil
}

func (s *Snapshots) View(ctx context.Context, r *snapi.ViewSnapshotRequest) (*snapi.MountsResponse, error) {
	sn, keys, err := s.resolve(ctx, r.Namespace, r.Snapshotter, key{r.Key, writeKey}, key{r.Parent, readKey})
	if err != nil {
		return nil, err
	}
	ms, err := sn.View(ctx, keys[0], keys[1], snapshot.WithLabels(r.Labels))
	if err != nil {
		return nil, err
	}
	s.Events.Publish(ctx, r.Namespace, "/snapshot/prepare", map[string]string{"key": r.Key, "parent": r.Parent, "snapshotter": r.Snapshotter, "kind": "view"})
	return toMounts(ms), nil
}

func (s *Snapshots) Mounts(ctx context.Context, r *snapi.MountsRequest) (*snapi.MountsResponse, error) {
	sn, keys, err := s.resolve(ctx, r.Namespace, r.Snapshotter, key{r.Key, writeKey})
	if err != nil {
		return nil, err
	}
	ms, err := sn.Mounts(ctx, keys[0])
	if err != nil {
		return nil, err
	}
	return toMounts(ms), nil
}

// Commit's name and key are both write keys: a namespace commits under
// its own prefix, so an API commit can never plant a layer that images
// of other namespaces would pick up by chain ID.
func (s *Snapshots) Commit(ctx context.Context, r *snapi.CommitSnapshotRequest) (*snapi.CommitSnapshotResponse, error) {
	sn, keys, err := s.resolve(ctx, r.Namespace, r.Snapshotter, key{r.Name, writeKey}, key{r.Key, writeKey})
	if err != nil {
		return nil, err
	}
	if err := sn.Commit(ctx, keys[0], keys[1], snapshot.WithLabels(r.Labels)); err != nil {
		return nil, err
	}
	s.Events.Publish(ctx, r.Namespace, "/snapshot/commit", map[string]string{"key": r.Key, "name": r.Name, "snapshotter": r.Snapshotter})
	return &snapi.CommitSnapshotResponse{}, nil
}

// Remove is of the namespace's own keys only; layers are removed by
// garbage collection when no image needs them.
func (s *Snapshots) Remove(ctx context.Context, r *snapi.RemoveSnapshotRequest) (*snapi.RemoveSnapshotResponse, error) {
	sn, keys, err := s.resolve(ctx, r.Namespace, r.Snapshotter, key{r.Key, writeKey})
	if err != nil {
		return nil, err
	}
	if err := sn.Remove(ctx, keys[0]); err != nil {
		return nil, err
	}
	s.Events.Publish(ctx, r.Namespace, "/snapshot/remove", map[string]string{"key": r.Key, "snapshotter": r.Snapshotter})
	return &snapi.RemoveSnapshotResponse{}, nil
}

// Stat takes a read key: a client may look at a layer it builds on.
func (s *Snapshots) Stat(ctx context.Context, r *snapi.StatSnapshotRequest) (*snapi.StatSnapshotResponse, error) {
	sn, keys, err := s.resolve(ctx, r.Namespace, r.Snapshotter, key{r.Key, readKey})
	if err != nil {
		return nil, err
	}
	info, err := sn.Stat(ctx, keys[0])
	if err != nil {
		return nil, err
	}
	return &snapi.StatSnapshotResponse{Info: s.toInfo(r.Namespace, info)}, nil
}

// List shows the namespace's own snapshots, not the layers: those are
// shared by every namespace and listed per image.
func (s *Snapshots) List(ctx context.Context, r *snapi.ListSnapshotsRequest) (*snapi.ListSnapshotsResponse, error) {
	sn, _, err := s.resolve(ctx, r.Namespace, r.Snapshotter)
	if err != nil {
		return nil, err
	}
	resp := &snapi.ListSnapshotsResponse{}
	err = sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
		if _, ok := node.UserKey(r.Namespace, info.Name); ok {
			resp.Info = append(resp.Info, s.toInfo(r.Namespace, info))
		}
		return nil
	})
	return resp, err
}

// Usage without a key reports each of the namespace's snapshots on its
// own line, because a snapshotter's usage of a child excludes its parents
// and one total would hide which one grew.
func (s *Snapshots) Usage(ctx context.Context, r *snapi.UsageRequest) (*snapi.UsageResponse, error) {
	sn, _, err := s.resolve(ctx, r.Namespace, r.Snapshotter)
	if err != nil {
		return nil, err
	}
	var keys []string
	if r.Key != "" {
		k, err := node.SnapshotRef(r.Namespace, r.Key)
		if err != nil {
			return nil, err
		}
		keys = []string{k}
	} else {
		err = sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
			if _, ok := node.UserKey(r.Namespace, info.Name); ok {
				keys = append(keys, info.Name)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	resp := &snapi.UsageResponse{}
	for _, k := range keys {
		u, err := sn.Usage(ctx, k)
		if err != nil {
			return nil, err
		}
		name, _ := node.UserKey(r.Namespace, k)
		resp.Usage = append(resp.Usage, &snapi.Usage{Key: name, Size: u.Size, Inodes: u.Inodes})
	}
	return resp, nil
}
