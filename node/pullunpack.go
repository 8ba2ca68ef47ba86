package node

import (
	"context"
	"fmt"
	"io"
	"sync"

	"berth.dev/berth/content"
	"berth.dev/berth/snapshot/layer"
	"berth.dev/berth/snapshot/unpack"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobSignals tells the unpacker of a pull in flight when each blob is in
// the store, so layer 0 is applied while later layers still download.
type blobSignals struct {
	mu    sync.Mutex
	ch    map[digest.Digest]chan struct{}
	first chan struct{} // closed at the first commit: the manifest is stored by then
	once  sync.Once
	done  chan struct{} // closed when the pull has ended, either way
}

func newBlobSignals() *blobSignals {
	return &blobSignals{ch: map[digest.Digest]chan struct{}{}, first: make(chan struct{}), done: make(chan struct{})}
}

func (s *blobSignals) get(d digest.Digest) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.ch[d]
	if !ok {
		c = make(chan struct{})
		s.ch[d] = c
	}
	return c
}

// committed is the pull's OnBlobCommitted hook (calls are serialized).
func (s *blobSignals) committed(desc ocispec.Descriptor) {
	c := s.get(desc.Digest)
	select {
	case <-c:
	default:
		close(c)
	}
	s.once.Do(func() { close(s.first) })
}

// wait returns once d is in the store, or an error if the pull ended
// without it.
func (s *blobSignals) wait(ctx context.Context, d digest.Digest) error {
	select {
	case <-s.get(d):
		return nil
	case <-s.done:
		select {
		case <-s.get(d):
			return nil
		default:
			return fmt.Errorf("blob %s: the pull ended without it: %w", d, errdefs.ErrUnavailable)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unpackStreaming unpacks the image rooted at root onto sn while the pull
// that signals sig is still fetching it, and returns the chain ID.
func (n *Node) unpackStreaming(ctx context.Context, root ocispec.Descriptor, platform ocispec.Platform, snapshotter string, sig *blobSignals, progress func(Progress)) (chainID, snName string, lo *leftOut, err error) {
	sn, snName, err := n.Snapshotter(snapshotter)
	if err != nil {
		return "", "", nil, err
	}
	select {
	case <-sig.first:
	case <-sig.done:
	case <-ctx.Done():
		return "", "", nil, ctx.Err()
	}
	_, m, err := content.ResolveManifest(ctx, n.opts.Content, root, content.NewMatcher(platform))
	if err != nil {
		return "", "", nil, err
	}
	if err := sig.wait(ctx, m.Config.Digest); err != nil {
		return "", "", nil, err
	}
	cfg, err := n.readConfig(ctx, root.Digest.String(), m)
	if err != nil {
		return "", "", nil, err
	}
	layers := make([]unpack.Layer, len(m.Layers))
	for i, l := range m.Layers {
		open := n.opener(l, progress)
		layers[i] = unpack.Layer{Desc: l, DiffID: cfg.RootFS.DiffIDs[i], Open: func(ctx context.Context) (io.ReadCloser, error) {
			if err := sig.wait(ctx, l.Digest); err != nil {
				return nil, err
			}
			return open(ctx)
		}}
	}
	uopts, lo := n.unpackOptions(root.Digest.String())
	chainID, err = unpack.Unpack(ctx, sn, layers, uopts)
	if err != nil {
		return "", snName, nil, fmt.Errorf("unpack onto %s: %w", snName, err)
	}
	return chainID, snName, lo, nil
}

// unpackOptions are the configured layer bounds, with a report of what a
// layer held that was not applied as it was (device nodes skipped, xattrs
// dropped), so an operator can see why an image behaves differently here.
func (n *Node) unpackOptions(image string) (unpack.Options, *leftOut) {
	opts := n.opts.Unpack
	lo := &leftOut{}
	opts.OnApplied = func(l unpack.Layer, r layer.ApplyResult) {
		if r.SkippedDevices == 0 && r.DroppedXattrs == 0 {
			return
		}
		lo.mu.Lock()
		lo.devices += r.SkippedDevices
		lo.xattrs += r.DroppedXattrs
		lo.mu.Unlock()
		n.log.Warn("layer applied with entries left out", "image", image, "layer", l.Desc.Digest,
			"skippedDevices", r.SkippedDevices, "devices", r.SkippedDeviceNames, "droppedXattrs", r.DroppedXattrs)
	}
	return opts, lo
}

// leftOut sums what the layers one unpack applied left out.
type leftOut struct {
	mu              sync.Mutex
	devices, xattrs int
}

// recordLeftOut puts what an unpack left out in the image's record (so its
// status) and publishes /images/left-out. An unpack that applied nothing
// new (its layers were committed already) keeps the record's counts.
func (n *Node) recordLeftOut(ctx context.Context, ns, name string, lo *leftOut) error {
	if lo == nil {
		return nil
	}
	lo.mu.Lock()
	devices, xattrs := lo.devices, lo.xattrs
	lo.mu.Unlock()
	if devices == 0 && xattrs == 0 {
		return nil
	}
	if err := n.opts.DB.SetImageLeftOut(ctx, ns, name, devices, xattrs); err != nil {
		return err
	}
	n.publish(ctx, ns, "/images/left-out", map[string]any{"id": name, "skippedDevices": devices, "droppedXattrs": xattrs})
	return nil
}
