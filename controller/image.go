package controller

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"berth.dev/berth/content/reference"
	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/plan"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// imageName is the image record an Image object keeps: its normalised ref.
func imageName(is spec.ImageSpec) (string, error) {
	r, err := reference.Parse(is.Ref)
	if err != nil {
		return "", err
	}
	return r.Name(), nil
}

// reconcileImage makes the image present (from its offline source, else by
// pull, as the pull policy says) and unpacked on its snapshotter. A pull
// that fails leaves a present image in use.
func (c *Controller) reconcileImage(ctx context.Context, e desired.Entry) (Result, error) {
	is, _ := e.Object.ImageSpec()
	ns := e.Key.Namespace
	if _, err := c.opts.DB.EnsureNamespace(ctx, ns); err != nil {
		return Result{}, err
	}
	name, err := imageName(is)
	if err != nil {
		return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "InvalidRef", message: err.Error()})}, nil
	}
	prevStatus, _ := c.opts.DB.GetStatus(ctx, e.Key)
	img, err := c.opts.DB.GetImage(ctx, ns, name)
	present := err == nil
	// A rollout fetches a revision's images before applying it, labelled
	// with the object they are for (read before any re-pull drops it).
	fetchedForMe := present && img.Labels[spec.LabelFetchedFor] == e.Key.String()
	sn := is.Snapshotter
	snName := sn
	if snName == "" {
		snName = spec.DefaultSnapshotter
	}
	// The plan (package plan, which berth diff prints too): Always pulls
	// when the spec changed and again once per resync period, so a moved
	// tag is followed (an unchanged image costs one request).
	acts := plan.Image(is, e.Hash, plan.ImageFacts{Present: present, Unpacked: present && img.Unpacked[snName] != "",
		StatusHash: prevStatus.SpecHash, PullDue: c.pullDue(e.Key)})
	if plan.Has(acts, plan.Pull) {
		if !present {
			// A re-pull of a present image stays Ready meanwhile.
			c.record(ctx, e, observation{reason: "Pulling", message: "fetching " + is.Ref, owns: name})
		}
		var ferr error
		var progress func(node.Progress)
		if !present {
			// A first pull's progress is in the status while it runs;
			// a re-pull stays Ready with its old figures.
			progress = c.pullProgress(ctx, e, name, "fetching "+is.Ref)
		}
		img, ferr = c.fetchImage(ctx, e, is, name, progress)
		c.pulled(e.Key, ferr)
		if ferr != nil {
			if present {
				// Keep serving what is on disk; Degraded says why it is old.
				c.log.Warn("re-pull failed; the image on disk stays in use", "object", e.Key.String(), "err", ferr)
				img, _ = c.opts.DB.GetImage(ctx, ns, name)
			} else {
				o := observation{degraded: true, reason: "PullFailed", message: ferr.Error()}
				if errdefs.IsNotFound(ferr) && is.PullPolicy == spec.PullNever {
					o.reason = "NotPresent"
				}
				changed := c.record(ctx, e, o)
				return Result{Changed: changed}, ferr
			}
		}
	}
	// Planned again on what the pull left: a new digest is not unpacked yet.
	if plan.Has(plan.Image(is, e.Hash, plan.ImageFacts{Present: true, Unpacked: img.Unpacked[snName] != "", StatusHash: e.Hash}), plan.Unpack) {
		c.record(ctx, e, observation{reason: "Unpacking", kind: imageKindStatus(img, true)})
		if _, err := c.opts.Node.Unpack(ctx, ns, name, sn, is.Platform, nil); err != nil {
			return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "UnpackFailed", message: err.Error()})}, err
		}
		if img, err = c.opts.DB.GetImage(ctx, ns, name); err != nil {
			return Result{}, err
		}
	}
	var update *spec.ImageUpdateStatus
	var requeue time.Duration
	kick := false
	if is.UpdatePolicy != nil {
		img, update, requeue, kick = c.autoUpdate(ctx, e, is, name, img, prevStatus)
	}
	kind := imageKindStatus(img, true)
	o := observation{ready: true, kind: func(st *spec.Status) {
		kind(st)
		st.ImageStatus.Update = update
	}}
	// The record is this object's to remove only if it made it: one that
	// was on the node before the object first saw it (pulled or imported
	// by hand) stays when the object goes, as other objects' do. A rollout
	// that fetched it for this object before applying it (its images come
	// first) labelled it so.
	if present && prevStatus.Owns != name && !fetchedForMe {
		o.message = "the image was on the node before it was declared: deleting the Image leaves it"
	} else {
		o.owns = name
	}
	if perr := c.lastPullErr(e.Key); perr != nil {
		o.degraded, o.reason, o.message = true, "PullFailed", perr.Error()
	}
	changed := c.record(ctx, e, o) || kick
	// A new digest (a moved tag) recreates the containers using it.
	if prev := prevStatus.Status.ImageStatus; prev != nil && prev.Digest != img.Target.Digest.String() {
		changed = true
	}
	return Result{Changed: changed, RequeueAfter: requeue}, nil
}

func (c *Controller) fetchImage(ctx context.Context, e desired.Entry, is spec.ImageSpec, name string, progress func(node.Progress)) (observed.Image, error) {
	ns := e.Key.Namespace
	if is.Source != nil {
		path := e.Object.ResolvePath(is.Source.Archive)
		if is.Source.Layout != "" {
			path = e.Object.ResolvePath(is.Source.Layout)
		}
		if _, err := os.Stat(path); err == nil || is.PullPolicy == spec.PullNever {
			imgs, err := c.opts.Node.Import(ctx, ns, path, node.ImportOptions{Name: name, Platform: is.Platform})
			if err != nil {
				return observed.Image{}, fmt.Errorf("import %s: %w", path, err)
			}
			return imgs[0], nil
		}
	}
	if is.PullPolicy == spec.PullNever {
		return observed.Image{}, fmt.Errorf("image %s is not on the node and pullPolicy is Never: %w", is.Ref, errdefs.ErrNotFound)
	}
	po := node.PullOptions{Platform: is.Platform, Progress: progress}
	if is.Auth != nil {
		po.AuthFile = is.Auth.File
	}
	return c.opts.Node.Pull(ctx, ns, is.Ref, po)
}

// pullProgressInterval paces the status writes of a running pull.
const pullProgressInterval = time.Second

// pullProgress returns a Progress callback that writes where the pull
// stands into the Image's status, at most once a pullProgressInterval
// (and at once when it starts waiting on a retry). The writes happen
// during the reconcile that pulls, which owns the key, so they never race
// with another reconcile of it.
func (c *Controller) pullProgress(ctx context.Context, e desired.Entry, name, message string) func(node.Progress) {
	tracker := node.NewPullTracker()
	var (
		mu   sync.Mutex
		last time.Time
	)
	return func(p node.Progress) {
		tracker.Observe(p)
		mu.Lock()
		defer mu.Unlock()
		if p.Status != "retrying" && time.Since(last) < pullProgressInterval {
			return
		}
		last = time.Now()
		snap := tracker.Snapshot()
		pp := &spec.PullProgress{Fetched: snap.Fetched, Waiting: snap.Waiting}
		for _, l := range snap.Layers {
			pp.Layers = append(pp.Layers, spec.LayerProgress{Digest: l.Digest, Status: l.Status, Offset: l.Offset, Total: l.Total, Rate: int64(l.Rate)})
		}
		c.record(ctx, e, observation{reason: "Pulling", message: message, owns: name,
			kind: func(st *spec.Status) { st.ImageStatus = &spec.ImageStatus{Progress: pp} }})
	}
}

func imageKindStatus(img observed.Image, present bool) func(*spec.Status) {
	return func(st *spec.Status) {
		if !present {
			return
		}
		is := &spec.ImageStatus{Digest: img.Target.Digest.String(), Size: img.Size, SkippedDevices: img.SkippedDevices, DroppedXattrs: img.DroppedXattrs}
		for sn, chain := range img.Unpacked {
			is.Unpacked = &spec.Unpacked{Snapshotter: sn, ChainID: chain}
		}
		st.ImageStatus = is
	}
}

// lastPull is when an Image was last fetched and how that went.
type lastPull struct {
	at  time.Time
	err error
}

// pullDue reports whether an Always image was last pulled a resync ago.
func (c *Controller) pullDue(k spec.Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.lastPull[k].at) >= c.opts.Resync
}

func (c *Controller) pulled(k spec.Key, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastPull[k] = lastPull{at: time.Now(), err: err}
}

func (c *Controller) lastPullErr(k spec.Key) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastPull[k].err
}
