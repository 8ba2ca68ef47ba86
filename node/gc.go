package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"

	"berth.dev/berth/content"
	"berth.dev/berth/internal/units"
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
	// Ingests are the refs of the stale ingests removed; their bytes are
	// in Bytes too.
	Ingests []string
}

// GC removes every blob no image in any namespace references, and every
// committed snapshot that no image's unpacked chain and no active snapshot
// (a container's rw layer, an unpack in flight) needs. What a lease holds,
// and what operations in flight are writing, is kept; expired leases are
// dropped first. Ingests last written longer than Options.StaleIngestAge
// ago are removed too, unless a writer has them open or a lease holds them.
func (n *Node) GC(ctx context.Context, dryRun bool) (GCResult, error) {
	return n.gc(ctx, dryRun, n.staleIngestAge())
}

// Prune is the collection a user asks for (berth content prune): GC, but
// every ingest no writer has open, no lease holds and no operation in
// flight wrote is stale, however recent: a user pruning wants the space a
// failed pull left back now, not in a day.
func (n *Node) Prune(ctx context.Context, dryRun bool) (GCResult, error) {
	return n.gc(ctx, dryRun, 0)
}

func (n *Node) gc(ctx context.Context, dryRun bool, ingestAge time.Duration) (GCResult, error) {
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
	stale, err := n.staleIngests(ctx, leased, ingestAge)
	if err != nil {
		return res, fmt.Errorf("gc ingests: %w", err)
	}
	for _, st := range stale {
		if !dryRun {
			if err := store.Abort(ctx, st.Ref); err != nil {
				if errdefs.IsUnavailable(err) || errdefs.IsNotFound(err) {
					continue // resumed or finished since it was listed
				}
				return res, fmt.Errorf("gc ingests: %w", err)
			}
		}
		res.Ingests = append(res.Ingests, st.Ref)
		res.Bytes += st.Offset
	}
	if len(res.Blobs)+len(res.Snapshots)+len(res.Ingests) > 0 {
		n.log.Info("garbage collected", "blobs", len(res.Blobs), "bytes", res.Bytes, "snapshots", len(res.Snapshots), "ingests", len(res.Ingests), "dryRun", dryRun)
	}
	return res, nil
}

// staleIngests lists the ingests last written before now-age that no lease
// holds and no operation in flight may have written. Whether a writer has
// one open is known only on Abort, which refuses it.
func (n *Node) staleIngests(ctx context.Context, leased leaseSet, age time.Duration) ([]content.Status, error) {
	sts, err := n.opts.Content.ListStatuses(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no ingest ever started
	}
	if err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-age)
	inFlight := n.leases.oldest()
	var out []content.Status
	for _, st := range sts {
		last := st.UpdatedAt
		if last.IsZero() {
			last = st.StartedAt
		}
		if leased.ingests[st.Ref] || last.After(cutoff) ||
			(!inFlight.IsZero() && !last.Before(inFlight.Add(-time.Second))) {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

func (n *Node) staleIngestAge() time.Duration {
	if n.opts.StaleIngestAge <= 0 {
		return DefaultStaleIngestAge
	}
	return n.opts.StaleIngestAge
}

// staleIngestsDue says whether a collection would find a stale ingest to
// remove.
func (n *Node) staleIngestsDue(ctx context.Context) bool {
	age := n.staleIngestAge()
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	leased, err := n.leasedResources(ctx)
	if err != nil {
		return false
	}
	stale, err := n.staleIngests(ctx, leased, age)
	return err == nil && len(stale) > 0
}

// StaleIngestBytes is how many bytes the ingests Prune would remove hold.
func (n *Node) StaleIngestBytes(ctx context.Context) (int64, error) {
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	leased, err := n.leasedResources(ctx)
	if err != nil {
		return 0, err
	}
	stale, err := n.staleIngests(ctx, leased, 0)
	var total int64
	for _, st := range stale {
		total += st.Offset
	}
	return total, err
}

// explainNoSpace adds to an error of a full disk (ENOSPC, EDQUOT, or the
// free-space reserve's errdefs.ErrResourceExhausted) how much stale
// ingests hold and how to free it; other errors are returned as they are.
// An error already explained (an import's unpack, inside the import) is
// returned as it is, so the note appears once.
func (n *Node) explainNoSpace(ctx context.Context, err error) error {
	if err == nil || !(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errdefs.IsResourceExhausted(err)) {
		return err
	}
	if errors.As(err, new(*noSpaceExplained)) {
		return err
	}
	b, serr := n.StaleIngestBytes(context.WithoutCancel(ctx))
	if serr != nil || b == 0 {
		return err
	}
	return &noSpaceExplained{err: err, note: fmt.Sprintf(" (stale ingests hold %s: berth content prune frees them)", units.Bytes(b))}
}

// noSpaceExplained is a full-disk error with explainNoSpace's note.
type noSpaceExplained struct {
	err  error
	note string
}

func (e *noSpaceExplained) Error() string { return e.err.Error() + e.note }
func (e *noSpaceExplained) Unwrap() error { return e.err }

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
