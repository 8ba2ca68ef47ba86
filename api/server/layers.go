package server

import (
	"context"
	"fmt"
	"time"

	diffapi "berth.dev/berth/api/diff/v1"
	snapi "berth.dev/berth/api/snapshots/v1"
	typesapi "berth.dev/berth/api/types/v1"
	"berth.dev/berth/content"
	"berth.dev/berth/node"
	"berth.dev/berth/snapshot"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layers serves the diff API: apply a layer, compare two trees, commit a
// container. (Diff is taken: Manifests.Diff is `berth diff`.)
type Layers struct {
	Node node.Layers
}

var _ diffapi.DiffService = (*Layers)(nil)

// fromMounts takes mounts as the client describes them; the node confines
// what it mounts to its own snapshotters' directories, so a client cannot
// use Apply or Compare to write or read elsewhere on the host.
func fromMounts(ms []*snapi.Mount) []snapshot.Mount {
	var out []snapshot.Mount
	for _, m := range ms {
		out = append(out, snapshot.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	return out
}

// fromDescriptor parses the digest strictly: it names a blob file.
func fromDescriptor(d *typesapi.Descriptor) (ocispec.Descriptor, error) {
	if d == nil {
		return ocispec.Descriptor{}, fmt.Errorf("no descriptor: %w", errdefs.ErrInvalidArgument)
	}
	dg, err := content.ParseDigest(d.Digest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: dg, Size: d.Size, Annotations: d.Annotations}, nil
}

// layerOptions maps HasSourceDateEpoch to a pointer because 0 is a valid
// epoch (1970) and must not mean "not set".
func layerOptions(o *diffapi.LayerOptions) node.LayerOptions {
	if o == nil {
		return node.LayerOptions{}
	}
	out := node.LayerOptions{Compression: o.Compression, Labels: o.Labels}
	if o.HasSourceDateEpoch {
		t := time.Unix(o.SourceDateEpoch, 0).UTC()
		out.SourceDateEpoch = &t
	}
	return out
}

// Apply answers with the diffID (the uncompressed digest) and what it left
// out (device nodes, xattrs it may not set), so a client that builds an
// image can record the right diffID and warn about what was dropped.
func (s *Layers) Apply(ctx context.Context, r *diffapi.ApplyRequest) (*diffapi.ApplyResponse, error) {
	desc, err := fromDescriptor(r.Diff)
	if err != nil {
		return nil, err
	}
	res, err := s.Node.ApplyLayer(ctx, defaultNS(r.Namespace), desc, fromMounts(r.Mounts))
	if err != nil {
		return nil, err
	}
	return &diffapi.ApplyResponse{
		Applied:        ToDescriptor(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: res.DiffID, Size: res.Size}),
		SkippedDevices: int32(res.SkippedDevices), DroppedXattrs: int32(res.DroppedXattrs),
	}, nil
}

// Compare takes either a snapshot key (the node finds its parent and
// mounts both) or two mount sets, never both: which tree is the lower one
// must be unambiguous, or the layer would invert additions and deletions.
func (s *Layers) Compare(ctx context.Context, r *diffapi.CompareRequest) (*diffapi.CompareResponse, error) {
	ns := defaultNS(r.Namespace)
	var res node.LayerResult
	var err error
	opts := layerOptions(r.Options)
	opts.List = r.List
	switch {
	case r.Key != "" && (len(r.Lower) > 0 || len(r.Upper) > 0):
		return nil, fmt.Errorf("compare: give a snapshot key or mounts, not both: %w", errdefs.ErrInvalidArgument)
	case r.Key != "":
		res, err = s.Node.CompareSnapshot(ctx, ns, r.Snapshotter, r.Key, r.Parent, opts)
	default:
		res, err = s.Node.CompareMounts(ctx, ns, fromMounts(r.Lower), fromMounts(r.Upper), opts)
	}
	if err != nil {
		return nil, err
	}
	return &diffapi.CompareResponse{Diff: ToDescriptor(res.Desc), DiffId: res.DiffID.String(), Entries: int32(res.Entries), FastPath: res.FastPath, Changes: res.Changes}, nil
}

// CommitContainer is one call, not Compare plus image writes by the
// client, so the pause, the diff and the record happen under the node's
// lock on the container and a crash leaves no half-made image.
func (s *Layers) CommitContainer(ctx context.Context, r *diffapi.CommitContainerRequest) (*diffapi.CommitContainerResponse, error) {
	res, err := s.Node.CommitContainer(ctx, defaultNS(r.Namespace), r.Id, r.Ref, node.CommitOptions{
		Layer: layerOptions(r.Options), Changes: r.Changes, Author: r.Author, Message: r.Message, Pause: r.Pause,
	})
	if err != nil {
		return nil, err
	}
	return &diffapi.CommitContainerResponse{Name: res.Image.Name, Target: ToDescriptor(res.Image.Target),
		Layer: ToDescriptor(res.Layer.Desc), DiffId: res.Layer.DiffID.String()}, nil
}
