package node

import (
	"context"
	"fmt"
	"time"

	"berth.dev/berth/content"
	"berth.dev/berth/snapshot"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// GCResult is what a collection removed.
type GCResult struct {
	Blobs     []digest.Digest
	Bytes     int64
	Snapshots []string // "snapshotter/key"
}

// GC removes every blob no image in any namespace references, and every
// committed snapshot that no image's unpacked chain and no active snapshot
// (a container's rw layer, an unpack in flight) needs. What a lease holds,
// and what operations in flight are writing, is kept; expired leases are
// dropped first.
func (n *Node) GC(ctx context.Context, dryRun bool) (GCResult, error) {
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	leased, err := n.leasedResources(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: read leases: %w", err)
	}
	all, err := n.opts.DB.AllImages(ctx)
	if err != nil {
		return GCResult{}, err
	}
	var roots []ocispec.Descriptor
	chains := map[string]map[string]bool{} // snapshotter → chain IDs in use
	for _, imgs := range all {
		for _, img := range imgs {
			roots = append(roots, img.Target)
			for sn, chain := range img.Unpacked {
				if chains[sn] == nil {
					chains[sn] = map[string]bool{}
				}
				chains[sn][chain] = true
			}
		}
	}
	store := n.opts.Content
	sizes := map[digest.Digest]int64{}
	protect := func(d digest.Digest) bool {
		info, err := store.Info(ctx, d)
		if err != nil {
			return errdefs.IsNotFound(err) == false
		}
		sizes[d] = info.Size
		return leased.digests[d] || n.leases.protects(d, info.CreatedAt)
	}
	var res GCResult
	if dryRun {
		res.Blobs, err = unreferenced(ctx, store, roots, protect)
	} else {
		res.Blobs, err = content.GC(ctx, store, roots, protect)
	}
	if err != nil {
		return res, err
	}
	for _, d := range res.Blobs {
		res.Bytes += sizes[d]
	}
	for name, sn := range n.opts.Snapshotters {
		for k := range leased.snapshots[name] {
			if chains[name] == nil {
				chains[name] = map[string]bool{}
			}
			chains[name][k] = true
		}
		removed, err := gcSnapshots(ctx, sn, chains[name], n.leases.oldest(), dryRun)
		for _, k := range removed {
			res.Snapshots = append(res.Snapshots, name+"/"+k)
		}
		if err != nil {
			return res, fmt.Errorf("gc snapshots of %s: %w", name, err)
		}
	}
	if len(res.Blobs)+len(res.Snapshots) > 0 {
		n.log.Info("garbage collected", "blobs", len(res.Blobs), "bytes", res.Bytes, "snapshots", len(res.Snapshots), "dryRun", dryRun)
	}
	return res, nil
}

func unreferenced(ctx context.Context, store content.Store, roots []ocispec.Descriptor, protect func(digest.Digest) bool) ([]digest.Digest, error) {
	marked := map[digest.Digest]bool{}
	if err := content.WalkRefs(ctx, store, roots, func(_ context.Context, d, _ ocispec.Descriptor) error {
		marked[d.Digest] = true
		return nil
	}); err != nil {
		return nil, err
	}
	var out []digest.Digest
	err := store.Walk(ctx, func(info content.Info) error {
		if !marked[info.Digest] && !protect(info.Digest) {
			out = append(out, info.Digest)
		}
		return nil
	})
	return out, err
}

// gcSnapshots removes committed snapshots not in keep and not an ancestor of
// a kept or active snapshot, leaves first.
// Committed snapshots created after leasedSince belong to an operation in
// flight (an unpack whose image is not recorded yet) and are kept.
func gcSnapshots(ctx context.Context, sn snapshot.Snapshotter, keep map[string]bool, leasedSince time.Time, dryRun bool) ([]string, error) {
	infos := map[string]snapshot.Info{}
	if err := sn.Walk(ctx, func(_ context.Context, info snapshot.Info) error {
		infos[info.Name] = info
		return nil
	}); err != nil {
		return nil, err
	}
	marked := map[string]bool{}
	var mark func(string)
	mark = func(name string) {
		for name != "" && !marked[name] {
			marked[name] = true
			name = infos[name].Parent
		}
	}
	for name, info := range infos {
		// Actives and views are containers, unpacks in flight or the user's.
		leased := !leasedSince.IsZero() && !info.Created.Before(leasedSince.Add(-time.Second))
		if keep[name] || info.Kind != snapshot.KindCommitted || leased {
			mark(name)
		}
	}
	var removed []string
	for {
		progress := false
		for name := range infos {
			if marked[name] || hasChild(infos, name) {
				continue
			}
			if !dryRun {
				if err := sn.Remove(ctx, name); err != nil && !errdefs.IsNotFound(err) {
					return removed, fmt.Errorf("remove %s: %w", name, err)
				}
			}
			removed = append(removed, name)
			delete(infos, name)
			progress = true
		}
		if !progress {
			return removed, nil
		}
	}
}

func hasChild(infos map[string]snapshot.Info, name string) bool {
	for _, info := range infos {
		if info.Parent == name {
			return true
		}
	}
	return false
}
