package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"berth.dev/berth/content/reference"
	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
)

// An Image's updatePolicy (spec.UpdatePolicy), as a state machine kept in
// its status (ImageStatus.Update), so a restart of berthd resumes it:
//
//	idle ── the tag names a new digest, not the rejected one ──► pull it fully
//	     (the previous digest pinned under a record of its own) ──► moving
//	moving: one Container at a time is let onto the new digest (Moved);
//	     the others are made from the pinned previous digest. Each must be
//	     Ready on it, with its Task, for updateMinReady ──► next, or, all
//	     moved ──► idle (Updates+1).
//	     Not Ready within the policy's timeout, or failed (a task that
//	     exited) ──► the record goes back to the previous digest, every
//	     Container follows it, and the digest is Rejected until the tag
//	     moves again ──► idle (Rollbacks+1).

// updateMinReady is how long a moved Container must stay Ready.
const updateMinReady = time.Second

// updateStep paces the checks while an update moves Containers.
const updateStep = 200 * time.Millisecond

// UpdateObserver is the optional part of an Observer told of automatic
// image updates: result is updated, rolledback or failed.
type UpdateObserver interface {
	ImageUpdate(result string)
}

func (c *Controller) observeUpdate(result string) {
	if o, ok := c.opts.Observer.(UpdateObserver); ok {
		o.ImageUpdate(result)
	}
}

// pinnedImageName is the record that holds an image's previous digest
// during an update: the repository at that digest.
func pinnedImageName(name, digest string) string {
	r, err := reference.Parse(name)
	if err != nil {
		return name + "@" + digest
	}
	return r.Context().Name() + "@" + digest
}

// containerImage is the image record and digest Container id is made from:
// during an update of its Image, the previous digest until the update lets
// it move.
func containerImage(imgName string, st *spec.ImageStatus, id string) (name, digest string) {
	if u := st.Update; u != nil && u.Target != "" && u.Previous != "" && !slices.Contains(u.Moved, id) {
		return pinnedImageName(imgName, u.Previous), u.Previous
	}
	return imgName, st.Digest
}

// autoUpdate runs one step of the Image's update policy. It returns the
// image record as it now is, the update state to record, when to look
// again, and whether the Containers using the image must be reconciled.
func (c *Controller) autoUpdate(ctx context.Context, e desired.Entry, is spec.ImageSpec, name string, img observed.Image, prev observed.ObjectStatus) (observed.Image, *spec.ImageUpdateStatus, time.Duration, bool) {
	u := spec.ImageUpdateStatus{}
	if p := prev.Status.ImageStatus; p != nil && p.Update != nil {
		u = *p.Update
		u.Moved = slices.Clone(u.Moved)
		if prev.SpecHash != e.Hash && u.Target != "" {
			// A new spec decides the image afresh: an update in flight ends.
			u.Previous, u.Target, u.Moved, u.MovingSince = "", "", nil, time.Time{}
		}
	}
	if u.Target != "" {
		return c.stepUpdate(ctx, e, is, name, img, u)
	}
	if p := prev.Status.ImageStatus; u.Target == "" && p != nil && prev.SpecHash == e.Hash && p.Digest != "" && p.Digest != img.Target.Digest.String() {
		// berthd was killed between the pull below (the record is on the
		// new digest) and this status (still idle on the previous one):
		// the pinned record says so. Resume the update one Container at
		// a time rather than take the digest for every Container at once.
		if _, err := c.opts.DB.GetImage(ctx, e.Key.Namespace, pinnedImageName(name, p.Digest)); err == nil {
			u.Previous, u.Target, u.Moved, u.MovingSince = p.Digest, img.Target.Digest.String(), nil, time.Time{}
			c.log.Info("update: resuming an update interrupted after its pull", "object", e.Key.String(), "from", u.Previous, "to", u.Target)
			return c.stepUpdate(ctx, e, is, name, img, u)
		}
	}
	interval := is.UpdatePolicy.IntervalValue()
	if !u.LastCheck.IsZero() {
		if wait := interval - time.Since(u.LastCheck); wait > 0 {
			return img, &u, wait, false
		}
	}
	ns := e.Key.Namespace
	log := c.log.With("object", e.Key.String())
	u.LastCheck = time.Now().UTC()
	authFile := ""
	if is.Auth != nil {
		authFile = is.Auth.File
	}
	cur := img.Target.Digest.String()
	d, err := c.opts.Node.ResolveDigest(ctx, is.Ref, authFile)
	if err != nil {
		log.Warn("update check: cannot resolve the tag; the image in use stays", "err", err)
		return img, &u, interval, false
	}
	if d == cur || d == u.Rejected {
		return img, &u, interval, false // nothing new, or the digest rolled back before
	}
	u.Rejected, u.RejectedReason = "", "" // the tag moved on
	pinned := pinnedImageName(name, cur)
	if _, err := c.opts.Node.Tag(ctx, ns, name, pinned); err != nil {
		log.Warn("update: cannot pin the previous digest; not updating", "err", err)
		return img, &u, interval, false
	}
	// The whole image first: nothing is stopped for a digest that cannot
	// be fetched.
	po := node.PullOptions{Platform: is.Platform, AuthFile: authFile, Unpack: true, Snapshotter: is.Snapshotter}
	newImg, err := c.opts.Node.Pull(ctx, ns, is.Ref, po)
	if err != nil {
		c.dropPinned(ctx, ns, pinned)
		c.observeUpdate("failed")
		c.opts.Bus.Publish(ctx, ns, "/images/autoupdate/failed", map[string]any{"kind": spec.KindImage, "name": e.Key.Name, "from": cur, "to": d, "error": err.Error()})
		log.Warn("update: pull of the new digest failed; the image in use stays", "digest", d, "err", err)
		return img, &u, interval, false
	}
	target := newImg.Target.Digest.String()
	if target == cur {
		c.dropPinned(ctx, ns, pinned)
		return newImg, &u, interval, false
	}
	u.Previous, u.Target, u.Moved, u.MovingSince = cur, target, nil, time.Time{}
	log.Info("update: new digest pulled; moving containers one at a time", "from", cur, "to", target)
	c.opts.Bus.Publish(ctx, ns, "/images/autoupdate/start", map[string]any{"kind": spec.KindImage, "name": e.Key.Name, "from": cur, "to": target})
	return c.stepUpdate(ctx, e, is, name, newImg, u)
}

// stepUpdate advances an update in progress by at most one Container.
func (c *Controller) stepUpdate(ctx context.Context, e desired.Entry, is spec.ImageSpec, name string, img observed.Image, u spec.ImageUpdateStatus) (observed.Image, *spec.ImageUpdateStatus, time.Duration, bool) {
	ns := e.Key.Namespace
	if n := len(u.Moved); n > 0 {
		last := u.Moved[n-1]
		r := c.readyOn(ctx, ns, last, u.Target)
		heldKey := ns + "/" + last + "@" + u.Target
		switch {
		case r.ready:
			if since := c.readySince(heldKey, true); time.Since(since) < updateMinReady {
				return img, &u, updateStep, false
			}
			c.readySince(heldKey, false)
		case r.failed && !r.since.Before(u.MovingSince), time.Since(u.MovingSince) > is.UpdatePolicy.TimeoutValue():
			c.readySince(heldKey, false)
			reason := fmt.Sprintf("Container %s/%s: %s", ns, last, r.reason)
			if !r.failed {
				reason = fmt.Sprintf("Container %s/%s not Ready after %s: %s", ns, last, is.UpdatePolicy.TimeoutValue(), r.reason)
			}
			return c.rollbackUpdate(ctx, e, is, name, img, u, reason)
		default:
			c.readySince(heldKey, false)
			return img, &u, updateStep, false
		}
	}
	for _, ck := range c.usersOf(e.Key) {
		if !slices.Contains(u.Moved, ck.Name) {
			u.Moved, u.MovingSince = append(u.Moved, ck.Name), time.Now().UTC()
			c.log.Info("update: moving a container to the new digest", "object", e.Key.String(), "container", ck.Name, "digest", u.Target)
			return img, &u, updateStep, true
		}
	}
	// Every Container is on the new digest and Ready.
	from, to := u.Previous, u.Target
	u.Updates++
	u.Previous, u.Target, u.Moved, u.MovingSince = "", "", nil, time.Time{}
	c.dropPinned(ctx, ns, pinnedImageName(name, from))
	c.observeUpdate("updated")
	c.opts.Bus.Publish(ctx, ns, "/images/autoupdate/done", map[string]any{"kind": spec.KindImage, "name": e.Key.Name, "from": from, "to": to})
	c.log.Info("update: done", "object", e.Key.String(), "from", from, "to", to)
	return img, &u, is.UpdatePolicy.IntervalValue(), true
}

// rollbackUpdate points the image back at the previous digest, which every
// Container then converges to, and rejects the new one.
func (c *Controller) rollbackUpdate(ctx context.Context, e desired.Entry, is spec.ImageSpec, name string, img observed.Image, u spec.ImageUpdateStatus, reason string) (observed.Image, *spec.ImageUpdateStatus, time.Duration, bool) {
	ns := e.Key.Namespace
	pinned := pinnedImageName(name, u.Previous)
	back, err := img, error(nil)
	// Already back (killed after the tag and the pinned record's removal,
	// before this status): the pinned record is gone, and tagging from it
	// would fail on every retry.
	if img.Target.Digest.String() != u.Previous {
		back, err = c.opts.Node.Tag(ctx, ns, pinned, name)
	}
	if err != nil {
		c.log.Error("update: cannot restore the previous digest; retrying", "object", e.Key.String(), "err", err)
		return img, &u, updateStep, false
	}
	if _, err := c.opts.Node.Unpack(ctx, ns, name, is.Snapshotter, is.Platform, nil); err != nil {
		c.log.Warn("update: unpack of the previous digest", "object", e.Key.String(), "err", err)
	}
	if got, err := c.opts.DB.GetImage(ctx, ns, name); err == nil {
		back = got
	}
	from, to := u.Target, u.Previous
	u.Rejected, u.RejectedReason = from, reason
	u.Rollbacks++
	u.Previous, u.Target, u.Moved, u.MovingSince = "", "", nil, time.Time{}
	c.dropPinned(ctx, ns, pinned)
	c.observeUpdate("rolledback")
	c.opts.Bus.Publish(ctx, ns, "/images/autoupdate/rollback", map[string]any{"kind": spec.KindImage, "name": e.Key.Name, "from": from, "to": to, "reason": reason})
	c.log.Warn("update: rolled back; the new digest is not tried again until the tag moves", "object", e.Key.String(), "rejected", from, "to", to, "reason", reason)
	return back, &u, is.UpdatePolicy.IntervalValue(), true
}

// dropPinned removes a pinned record unless a declared Image keeps a
// record of that name itself.
func (c *Controller) dropPinned(ctx context.Context, ns, pinned string) {
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindImage}) {
		if is, ok := e.Object.ImageSpec(); ok {
			if n, err := imageName(is); err == nil && n == pinned {
				return
			}
		}
	}
	if err := c.opts.Node.RemoveImage(ctx, ns, pinned, false); err != nil {
		c.log.Debug("remove pinned image", "name", pinned, "err", err)
	}
}

// usersOf are the declared Containers using an Image, by name.
func (c *Controller) usersOf(img spec.Key) []spec.Key {
	var out []spec.Key
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: img.Namespace, Kind: spec.KindContainer}) {
		if cs, ok := e.Object.ContainerSpec(); ok && cs.Image == img.Name {
			out = append(out, e.Key)
		}
	}
	return out
}

// readySince tracks how long a moved Container has been Ready (in memory:
// after a restart the hold starts again, which only delays).
func (c *Controller) readySince(key string, ready bool) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.heldReady == nil {
		c.heldReady = map[string]time.Time{}
	}
	if !ready {
		delete(c.heldReady, key)
		return time.Time{}
	}
	t, ok := c.heldReady[key]
	if !ok {
		t = time.Now()
		c.heldReady[key] = t
	}
	return t
}

// readiness is one object as an update judges it.
type readiness struct {
	ready, failed bool
	reason        string
	since         time.Time
}

// failedReasons are Ready reasons that waiting does not mend (as the
// rollout's: a failed create or start is retried, the timeout judges it).
var failedReasons = map[string]bool{
	"BackOff": true, "Failed": true, "Unhealthy": true, "InvalidSpec": true, "PolicyViolation": true,
}

// objectReady is what Ready means for an update until probes say more:
// the object's Ready condition for its current spec.
func (c *Controller) objectReady(ctx context.Context, k spec.Key) readiness {
	st, ok := c.isReady(ctx, k)
	if ok {
		return readiness{ready: true}
	}
	cond, has := st.Status.Condition(spec.ConditionReady)
	if !has {
		return readiness{reason: "not reconciled yet"}
	}
	why := cond.Reason
	if cond.Message != "" {
		why += ": " + cond.Message
	}
	return readiness{reason: why, failed: cond.Status == spec.ConditionFalse && failedReasons[cond.Reason], since: cond.LastTransitionTime}
}

// readyOn reports whether Container id is Ready made from digest, and
// every Task running it Ready in it.
func (c *Controller) readyOn(ctx context.Context, ns, id, digest string) readiness {
	ck := spec.Key{Namespace: ns, Kind: spec.KindContainer, Name: id}
	r := c.objectReady(ctx, ck)
	if !r.ready {
		return r
	}
	st, _ := c.opts.DB.GetStatus(ctx, ck)
	if st.Status.ContainerStatus == nil || st.Status.ContainerStatus.ImageDigest != digest {
		return readiness{reason: "not recreated on " + digest + " yet"}
	}
	ctr, err := c.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return readiness{reason: "no container yet"}
	}
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindTask}) {
		ts, ok := e.Object.TaskSpec()
		if !ok || ts.Container != id {
			continue
		}
		r := c.objectReady(ctx, e.Key)
		if !r.ready {
			r.reason = "Task " + e.Key.Name + ": " + r.reason
			return r
		}
		tst, _ := c.opts.DB.GetStatus(ctx, e.Key)
		if ts.State == spec.TaskRunning || ts.State == "" {
			t := tst.Status.TaskStatus
			if t == nil || t.State != spec.TaskPhaseRunning || !t.ContainerCreatedAt.Equal(ctr.CreatedAt) {
				return readiness{reason: "Task " + e.Key.Name + " not running in the new container yet"}
			}
		}
	}
	return readiness{ready: true}
}
