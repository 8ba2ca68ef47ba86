package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/content"
	"berth.dev/berth/content/remote"
	"berth.dev/berth/observed"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/diff"
	"berth.dev/berth/snapshot/layer"
)

// LayerOptions say how a layer computed from changes is written.
type LayerOptions struct {
	Compression string // gzip (""), zstd or none
	// SourceDateEpoch clamps mtimes (and dates the commit's config), so
	// the same changes give the same digests.
	SourceDateEpoch *time.Time
	Labels          map[string]string
	// List fills LayerResult.Changes (see diff.List).
	List bool
}

// LayerResult is a layer written to the content store.
type LayerResult struct {
	Desc     ocispec.Descriptor
	DiffID   digest.Digest
	Entries  int
	FastPath bool
	Changes  []string
}

// ApplyLayer applies layer blob desc onto mounts with the node's unpack
// bounds (devices, size caps, free-space reserve).
func (n *Node) ApplyLayer(ctx context.Context, ns string, desc ocispec.Descriptor, mounts []snapshot.Mount) (layer.ApplyResult, error) {
	if err := content.ValidateDescriptor(desc); err != nil {
		return layer.ApplyResult{}, err
	}
	if len(mounts) == 0 {
		return layer.ApplyResult{}, fmt.Errorf("apply %s: no mounts: %w", desc.Digest, errdefs.ErrInvalidArgument)
	}
	release := n.begin(ctx, ns, "apply")
	defer release()
	rc, err := n.opener(desc, func(Progress) {})(ctx)
	if err != nil {
		return layer.ApplyResult{}, fmt.Errorf("apply %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	u := n.opts.Unpack
	res, err := diff.Apply(ctx, mounts, rc, layer.Options{Limits: u.Limits, AllowDevices: u.AllowDevices, FreeSpace: u.FreeSpace})
	if err != nil {
		return res, n.explainNoSpace(ctx, fmt.Errorf("apply %s: %w", desc.Digest, err))
	}
	return res, nil
}

// CompareMounts writes the layer from the lower tree to the upper one into
// the content store.
func (n *Node) CompareMounts(ctx context.Context, ns string, lower, upper []snapshot.Mount, opts LayerOptions) (LayerResult, error) {
	if err := n.checkLease(ctx, ns); err != nil {
		return LayerResult{}, err
	}
	release := n.begin(ctx, ns, "diff")
	defer release()
	res, err := n.compare(ctx, lower, upper, opts)
	if err != nil {
		return res, err
	}
	return res, n.addToLease(ctx, ns, observed.LeaseResource{Type: observed.ResourceContent, ID: res.Desc.Digest.String()})
}

// CompareSnapshot writes the layer of snapshot key (of namespace ns, or a
// layer's chain ID) against parent ("" is the snapshot's own parent).
func (n *Node) CompareSnapshot(ctx context.Context, ns, snapshotter, key, parent string, opts LayerOptions) (LayerResult, error) {
	sn, _, err := n.Snapshotter(snapshotter)
	if err != nil {
		return LayerResult{}, err
	}
	k, err := SnapshotRef(ns, key)
	if err != nil {
		return LayerResult{}, err
	}
	info, err := sn.Stat(ctx, k)
	if err != nil {
		return LayerResult{}, err
	}
	p := info.Parent
	if parent != "" {
		if p, err = SnapshotRef(ns, parent); err != nil {
			return LayerResult{}, err
		}
	}
	if err := n.checkLease(ctx, ns); err != nil {
		return LayerResult{}, err
	}
	release := n.begin(ctx, ns, "diff")
	defer release()
	var res LayerResult
	err = n.withSnapshotTrees(ctx, ns, sn, p, k, info.Kind, func(lower, upper []snapshot.Mount) error {
		var err error
		res, err = n.compare(ctx, lower, upper, opts)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("diff of snapshot %s: %w", key, err)
	}
	return res, n.addToLease(ctx, ns, observed.LeaseResource{Type: observed.ResourceContent, ID: res.Desc.Digest.String()})
}

// withSnapshotTrees calls fn with the mounts of snapshot key (a view of it
// when committed) and of a view of parent (none when parent is "").
func (n *Node) withSnapshotTrees(ctx context.Context, ns string, sn snapshot.Snapshotter, parent, key string, kind snapshot.Kind, fn func(lower, upper []snapshot.Mount) error) error {
	view := func(of string) ([]snapshot.Mount, func(), error) {
		vk := ns + "/diff-view-" + randomHex()
		ms, err := sn.View(ctx, vk, of, snapshot.WithLabels(map[string]string{labelDiffView: "view"}))
		if err != nil {
			return nil, nil, fmt.Errorf("view %s: %w", of, err)
		}
		return ms, func() {
			if err := sn.Remove(context.WithoutCancel(ctx), vk); err != nil && !errdefs.IsNotFound(err) {
				n.log.Warn("remove diff view", "key", vk, "err", err)
			}
		}, nil
	}
	var upper, lower []snapshot.Mount
	var err error
	if kind == snapshot.KindCommitted {
		var done func()
		if upper, done, err = view(key); err != nil {
			return err
		}
		defer done()
	} else if upper, err = sn.Mounts(ctx, key); err != nil {
		return err
	}
	if parent != "" {
		var done func()
		if lower, done, err = view(parent); err != nil {
			return err
		}
		defer done()
	}
	return fn(lower, upper)
}

// labelDiffView marks the views a diff makes of its trees; a crash leaves
// them, and they would pin their parent layers against collection.
const labelDiffView = "berth.dev/diff"

// CleanupDiffViews removes the views that diffs and commits cut short by a
// crash left. Call it at start, before any diff runs.
func (n *Node) CleanupDiffViews(ctx context.Context) error {
	var errs []error
	for _, name := range n.SnapshotterNames() {
		sn := n.opts.Snapshotters[name]
		var stale []string
		err := sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
			if info.Kind == snapshot.KindView && info.Labels[labelDiffView] == "view" && strings.Contains(info.Name, "/diff-view-") {
				stale = append(stale, info.Name)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("snapshotter %s: %w", name, err))
			continue
		}
		for _, k := range stale {
			n.log.Info("removing the view of a diff cut short", "snapshotter", name, "key", k)
			if err := sn.Remove(ctx, k); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// compare streams the layer into an ingest and commits it under its digest.
func (n *Node) compare(ctx context.Context, lower, upper []snapshot.Mount, opts LayerOptions) (LayerResult, error) {
	comp, err := diff.ParseCompression(opts.Compression)
	if err != nil {
		return LayerResult{}, err
	}
	ref := "diff-" + randomHex()
	w, err := n.opts.Content.Writer(ctx, ref, ocispec.Descriptor{})
	if err != nil {
		return LayerResult{}, fmt.Errorf("open ingest %s: %w", ref, err)
	}
	defer w.Close()
	res, err := diff.Compare(ctx, lower, upper, w, diff.Options{Compression: comp, SourceDateEpoch: opts.SourceDateEpoch})
	if err != nil {
		_ = n.opts.Content.Abort(context.WithoutCancel(ctx), ref)
		return LayerResult{}, n.explainNoSpace(ctx, err)
	}
	labels := map[string]string{LabelUncompressed: res.DiffID.String()}
	for k, v := range opts.Labels {
		labels[k] = v
	}
	if err := w.Commit(ctx, res.Size, res.Digest, content.WithLabels(labels)); err != nil && !errdefs.IsAlreadyExists(err) {
		_ = n.opts.Content.Abort(context.WithoutCancel(ctx), ref)
		return LayerResult{}, fmt.Errorf("commit layer %s: %w", res.Digest, err)
	}
	out := LayerResult{Desc: res.Descriptor(), DiffID: res.DiffID, Entries: res.Entries, FastPath: res.FastPath}
	if opts.List {
		ra, err := n.opts.Content.ReaderAt(ctx, out.Desc)
		if err != nil {
			return out, err
		}
		defer ra.Close()
		if out.Changes, err = diff.List(content.NewReader(ra)); err != nil {
			return out, fmt.Errorf("list layer %s: %w", out.Desc.Digest, err)
		}
	}
	return out, nil
}

// LabelUncompressed on a layer blob is its diffID (containerd's
// containerd.io/uncompressed).
const LabelUncompressed = "berth.dev/uncompressed"

// CommitOptions configure CommitContainer.
type CommitOptions struct {
	Layer LayerOptions
	// Changes are Dockerfile instructions applied to the config (see
	// ApplyChanges).
	Changes []string
	Author  string
	Message string
	// Pause freezes a running task while its tree is read, so the layer is
	// one moment of it.
	Pause  bool
	Labels map[string]string // of the image record
}

// CommitResult is the image a commit made.
type CommitResult struct {
	Image observed.Image
	Layer LayerResult
}

// CommitContainer makes image ref of namespace ns from container id: the
// layers of the image it runs plus one layer of what it changed, and that
// image's config with the changes applied.
func (n *Node) CommitContainer(ctx context.Context, ns, id, ref string, opts CommitOptions) (CommitResult, error) {
	c, err := n.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return CommitResult{}, err
	}
	// The image is local: it is named as given (as an import names its
	// images), so `berth run REF` finds it; the name must still be a
	// reference a push could use.
	if _, err := remote.ParseRef(ref); err != nil {
		return CommitResult{}, err
	}
	img, err := n.opts.DB.GetImage(ctx, ns, c.Image)
	if err != nil {
		return CommitResult{}, fmt.Errorf("container %s: its image: %w", id, err)
	}
	if c.ImageDigest != "" && img.Target.Digest.String() != c.ImageDigest {
		return CommitResult{}, fmt.Errorf("container %s was made from %s %s, which now names %s: %w", id, c.Image, c.ImageDigest, img.Target.Digest, errdefs.ErrFailedPrecondition)
	}
	m, cfg, err := n.ImageConfig(ctx, img, "")
	if err != nil {
		return CommitResult{}, err
	}
	if err := ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return CommitResult{}, err
	}
	sn, _, err := n.Snapshotter(c.Snapshotter)
	if err != nil {
		return CommitResult{}, err
	}
	info, err := sn.Stat(ctx, c.SnapshotKey)
	if err != nil {
		return CommitResult{}, fmt.Errorf("container %s snapshot: %w", id, err)
	}
	if err := n.checkLease(ctx, ns); err != nil {
		return CommitResult{}, err
	}
	release := n.begin(ctx, ns, "commit")
	defer release()
	if opts.Pause {
		if err := n.PauseTask(ctx, ns, id); err == nil {
			defer func() {
				if err := n.ResumeTask(context.WithoutCancel(ctx), ns, id); err != nil {
					n.log.Warn("resume task after commit", "container", id, "err", err)
				}
			}()
		} else if !errdefs.IsNotFound(err) {
			n.log.Info("commit: task not paused", "container", id, "err", err)
		}
	}
	start := time.Now()
	var layer LayerResult
	err = n.withSnapshotTrees(ctx, ns, sn, info.Parent, c.SnapshotKey, info.Kind, func(lower, upper []snapshot.Mount) error {
		var err error
		layer, err = n.compare(ctx, lower, upper, opts.Layer)
		return err
	})
	if err != nil {
		return CommitResult{}, fmt.Errorf("commit container %s: %w", id, err)
	}

	created := time.Now().UTC()
	if e := opts.Layer.SourceDateEpoch; e != nil {
		created = e.UTC()
	}
	cfg.Created = &created
	if opts.Author != "" {
		cfg.Author = opts.Author
	}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, layer.DiffID)
	cfg.History = append(cfg.History, ocispec.History{
		Created: &created, CreatedBy: "berth container commit " + id, Author: opts.Author, Comment: opts.Message,
	})
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return CommitResult{}, err
	}
	cfgDesc, err := n.putBlob(ctx, ocispec.MediaTypeImageConfig, cfgJSON)
	if err != nil {
		return CommitResult{}, err
	}
	out := ocispec.Manifest{
		Versioned: m.Versioned, MediaType: ocispec.MediaTypeImageManifest,
		Config: cfgDesc,
	}
	out.SchemaVersion = 2
	for _, l := range m.Layers {
		l.MediaType = ociLayerType(l.MediaType)
		l.URLs, l.Annotations = nil, nil
		out.Layers = append(out.Layers, l)
	}
	out.Layers = append(out.Layers, layer.Desc)
	mJSON, err := json.Marshal(out)
	if err != nil {
		return CommitResult{}, err
	}
	mDesc, err := n.putBlob(ctx, ocispec.MediaTypeImageManifest, mJSON)
	if err != nil {
		return CommitResult{}, err
	}
	platform := ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if platform.OS == "" || platform.Architecture == "" {
		platform = content.HostPlatform()
	}
	rec, err := n.record(ctx, ns, ref, mDesc, platform, opts.Labels)
	if err != nil {
		return CommitResult{}, err
	}
	n.log.Info("committed container", "namespace", ns, "container", id, "image", rec.Name, "digest", mDesc.Digest,
		"layer", layer.Desc.Digest, "layerBytes", layer.Desc.Size, "entries", layer.Entries, "fastPath", layer.FastPath,
		"seconds", time.Since(start).Seconds())
	n.publish(ctx, ns, "/containers/commit", map[string]any{"id": id, "image": rec.Name, "digest": mDesc.Digest.String()})
	return CommitResult{Image: rec, Layer: layer}, n.leaseImage(ctx, ns, rec)
}

// ociLayerType maps Docker's layer media types to their OCI names: a
// commit writes an OCI manifest, whose layers must carry OCI types.
func ociLayerType(mt string) string {
	switch mt {
	case content.MediaTypeDockerLayerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case content.MediaTypeDockerLayer:
		return ocispec.MediaTypeImageLayer
	case content.MediaTypeDockerForeignLayerGzip:
		return ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // the OCI name of a foreign layer
	}
	return mt
}

// putBlob writes a small blob (a config, a manifest) to the content store.
func (n *Node) putBlob(ctx context.Context, mediaType string, data []byte) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	w, err := n.opts.Content.Writer(ctx, "commit-"+desc.Digest.String(), desc)
	if errdefs.IsAlreadyExists(err) {
		return desc, nil
	}
	if err != nil {
		return desc, fmt.Errorf("write %s: %w", mediaType, err)
	}
	defer w.Close()
	if err := w.Truncate(0); err != nil {
		return desc, err
	}
	if _, err := w.Write(data); err != nil {
		return desc, fmt.Errorf("write %s: %w", mediaType, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return desc, fmt.Errorf("commit %s: %w", mediaType, err)
	}
	return desc, nil
}
