package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/content"
	"berth.dev/berth/observed"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Labels berthd puts on the leases of its own operations. Such a lease also
// protects everything created while it lasts (a pull writes blobs before it
// knows what they are), and is dropped at the next start: the operation
// died with the process that ran it.
const (
	LabelLeaseOwner = "berth.dev/lease.owner"
	LabelLeaseOp    = "berth.dev/lease.op"
	leaseOwnerSelf  = "berthd"
	// internalLeaseTTL bounds an operation's lease should berthd hang.
	internalLeaseTTL = 24 * time.Hour
	// expirySweep is how often expired leases are looked for when none
	// expires sooner.
	expirySweep = time.Minute
)

type leaseKey struct{}

// WithLease makes the operations run with ctx add what they create to the
// lease id of the operation's namespace (ctr's --lease).
func WithLease(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, leaseKey{}, id)
}

// LeaseFrom returns the lease WithLease put in ctx.
func LeaseFrom(ctx context.Context) string {
	id, _ := ctx.Value(leaseKey{}).(string)
	return id
}

// LeaseOptions create a lease.
type LeaseOptions struct {
	ID      string // "" picks one
	Labels  map[string]string
	Expires time.Duration // 0 is never
}

// CreateLease creates a lease in ns.
func (n *Node) CreateLease(ctx context.Context, ns string, o LeaseOptions) (observed.Lease, error) {
	if o.Expires < 0 {
		return observed.Lease{}, fmt.Errorf("lease expiry %s is negative: %w", o.Expires, errdefs.ErrInvalidArgument)
	}
	if o.ID == "" {
		o.ID = randomLeaseID()
	}
	l := observed.Lease{ID: o.ID, Labels: o.Labels, CreatedAt: time.Now().UTC()}
	if o.Expires > 0 {
		l.Expires = l.CreatedAt.Add(o.Expires)
	}
	l, err := n.opts.DB.CreateLease(ctx, ns, l)
	if err != nil {
		return l, err
	}
	n.opts.Events.Publish(ctx, ns, "/leases/create", map[string]any{"id": l.ID})
	n.wakeExpiry()
	return l, nil
}

// ListLeases lists the leases of ns.
func (n *Node) ListLeases(ctx context.Context, ns string) ([]observed.Lease, error) {
	return n.opts.DB.ListLeases(ctx, ns)
}

// DeleteLease ends a lease; with sync, what only it held is collected
// before it returns.
func (n *Node) DeleteLease(ctx context.Context, ns, id string, sync bool) error {
	n.gcMu.Lock()
	err := n.opts.DB.DeleteLease(ctx, ns, id)
	n.gcMu.Unlock()
	if err != nil {
		return err
	}
	n.opts.Events.Publish(ctx, ns, "/leases/delete", map[string]any{"id": id})
	if sync {
		_, err := n.GC(ctx, false)
		return err
	}
	return nil
}

// AddLeaseResources adds resources to a lease. It waits for a collection
// in progress, so a resource is never added to what a sweep already judged.
func (n *Node) AddLeaseResources(ctx context.Context, ns, id string, rs ...observed.LeaseResource) error {
	n.gcMu.Lock()
	defer n.gcMu.Unlock()
	return n.opts.DB.AddLeaseResources(ctx, ns, id, rs...)
}

// RemoveLeaseResources drops resources from a lease.
func (n *Node) RemoveLeaseResources(ctx context.Context, ns, id string, rs ...observed.LeaseResource) error {
	return n.opts.DB.RemoveLeaseResources(ctx, ns, id, rs...)
}

// checkLease fails unless ctx names no lease or one that exists in ns, so an
// operation refuses a mistyped --lease before doing any work.
func (n *Node) checkLease(ctx context.Context, ns string) error {
	id := LeaseFrom(ctx)
	if id == "" {
		return nil
	}
	l, err := n.opts.DB.GetLease(ctx, ns, id)
	if err != nil {
		return err
	}
	if l.Expired(time.Now()) {
		return fmt.Errorf("lease %q in namespace %q has expired: %w", id, ns, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// addToLease adds resources to the lease ctx names, if any.
func (n *Node) addToLease(ctx context.Context, ns string, rs ...observed.LeaseResource) error {
	id := LeaseFrom(ctx)
	if id == "" || len(rs) == 0 {
		return nil
	}
	if err := n.AddLeaseResources(ctx, ns, id, rs...); err != nil {
		return fmt.Errorf("add to lease %s: %w", id, err)
	}
	return nil
}

// imageResources are an image's blobs present in the store and, for each
// snapshotter it is unpacked onto, its top layer snapshot (which holds the
// chain below it).
func (n *Node) imageResources(ctx context.Context, img observed.Image) ([]observed.LeaseResource, error) {
	var rs []observed.LeaseResource
	err := content.WalkRefs(ctx, n.opts.Content, []ocispec.Descriptor{img.Target}, func(ctx context.Context, d, _ ocispec.Descriptor) error {
		if _, err := n.opts.Content.Info(ctx, d.Digest); err != nil {
			if errdefs.IsNotFound(err) {
				return content.ErrSkipChildren
			}
			return err
		}
		rs = append(rs, observed.LeaseResource{Type: observed.ResourceContent, ID: d.Digest.String()})
		return nil
	})
	for sn, chain := range img.Unpacked {
		rs = append(rs, observed.LeaseResource{Type: observed.ResourceSnapshot + "/" + sn, ID: chain})
	}
	return rs, err
}

// begin starts an operation of berthd's own: a lease recorded like a
// user's (berth lease ls shows it) whose window protects everything created
// until release. A failure to record it is logged, not fatal: the window
// lives in memory and protects all the same while this process runs.
func (n *Node) begin(ctx context.Context, ns, op string) (release func()) {
	done := n.leases.acquire()
	id := "berthd-" + op + "-" + randomLeaseID()
	_, err := n.opts.DB.CreateLease(ctx, ns, observed.Lease{ID: id, CreatedAt: time.Now().UTC(),
		Expires: time.Now().UTC().Add(internalLeaseTTL),
		Labels:  map[string]string{LabelLeaseOwner: leaseOwnerSelf, LabelLeaseOp: op}})
	if err != nil {
		n.log.Warn("record lease of operation", "op", op, "namespace", ns, "err", err)
		return done
	}
	return func() {
		if err := n.opts.DB.DeleteLease(context.WithoutCancel(ctx), ns, id); err != nil && !errdefs.IsNotFound(err) {
			n.log.Warn("delete lease of operation", "lease", id, "err", err)
		}
		done()
	}
}

func randomLeaseID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// leaseSet is what the leases in force hold, read at the start of a
// collection.
type leaseSet struct {
	digests   map[digest.Digest]bool
	snapshots map[string]map[string]bool // snapshotter → keys
	ingests   map[string]bool            // ingest refs
}

// leasedResources drops expired leases and returns what the others hold.
// Called with gcMu held.
func (n *Node) leasedResources(ctx context.Context) (leaseSet, error) {
	set := leaseSet{digests: map[digest.Digest]bool{}, snapshots: map[string]map[string]bool{}, ingests: map[string]bool{}}
	all, err := n.opts.DB.AllLeases(ctx)
	if err != nil {
		return set, err
	}
	now := time.Now()
	for ns, ls := range all {
		for _, l := range ls {
			if l.Expired(now) {
				if err := n.opts.DB.DeleteLease(ctx, ns, l.ID); err != nil && !errdefs.IsNotFound(err) {
					return set, err
				}
				n.log.Info("lease expired", "namespace", ns, "lease", l.ID)
				n.opts.Events.Publish(ctx, ns, "/leases/delete", map[string]any{"id": l.ID, "expired": true})
				continue
			}
			for _, r := range l.Resources {
				switch {
				case r.Type == observed.ResourceContent:
					if d, err := digest.Parse(r.ID); err == nil {
						set.digests[d] = true
					}
				case r.Type == observed.ResourceIngests:
					set.ingests[r.ID] = true
				case strings.HasPrefix(r.Type, observed.ResourceSnapshot+"/"):
					sn := strings.TrimPrefix(r.Type, observed.ResourceSnapshot+"/")
					if set.snapshots[sn] == nil {
						set.snapshots[sn] = map[string]bool{}
					}
					set.snapshots[sn][r.ID] = true
				}
			}
		}
	}
	return set, nil
}

// RecoverLeases drops the leases of operations the previous berthd ran
// (they died with it), collects what expired leases held, and keeps doing
// so as leases expire until ctx ends. Call it once at start.
func (n *Node) RecoverLeases(ctx context.Context) error {
	all, err := n.opts.DB.AllLeases(ctx)
	if err != nil {
		return err
	}
	dropped := 0
	now := time.Now()
	for ns, ls := range all {
		for _, l := range ls {
			if l.Labels[LabelLeaseOwner] == leaseOwnerSelf || l.Expired(now) {
				if err := n.opts.DB.DeleteLease(ctx, ns, l.ID); err != nil && !errdefs.IsNotFound(err) {
					return err
				}
				n.log.Info("dropped lease at start", "namespace", ns, "lease", l.ID, "expired", l.Expired(now))
				dropped++
			}
		}
	}
	if dropped > 0 {
		if _, err := n.GC(ctx, false); err != nil {
			n.log.Warn("garbage collection after dropping leases", "err", err)
		}
	}
	n.expiryWake = make(chan struct{}, 1)
	n.background.Add(1)
	go func() {
		defer n.background.Done()
		n.expireLoop(ctx)
	}()
	return nil
}

func (n *Node) wakeExpiry() {
	if n.expiryWake == nil {
		return
	}
	select {
	case n.expiryWake <- struct{}{}:
	default:
	}
}

// expireLoop collects at each lease's expiry (at least every expirySweep),
// and when an ingest has gone stale.
func (n *Node) expireLoop(ctx context.Context) {
	for {
		wait := expirySweep
		all, err := n.opts.DB.AllLeases(ctx)
		if err != nil {
			n.log.Warn("read leases", "err", err)
		}
		expired := false
		now := time.Now()
		for _, ls := range all {
			for _, l := range ls {
				if l.Expired(now) {
					expired = true
				} else if !l.Expires.IsZero() {
					wait = min(wait, l.Expires.Sub(now))
				}
			}
		}
		if expired {
			_, err := n.GC(ctx, false)
			if err == nil {
				continue
			}
			if ctx.Err() == nil {
				n.log.Warn("garbage collection of expired leases", "err", err)
			}
			wait = expirySweep
		} else if n.staleIngestsDue(ctx) {
			// Once, not again at once: an ingest open for a day stays.
			if _, err := n.GC(ctx, false); err != nil && ctx.Err() == nil {
				n.log.Warn("garbage collection of stale ingests", "err", err)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.expiryWake:
		case <-t.C:
		}
		t.Stop()
	}
}
