package controller

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/oci"
	"berth.dev/berth/plan"
	"berth.dev/berth/policy"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// reconcileContainer makes the container exist as its spec and its image's
// current digest say, recreating it when either changed or when its
// snapshot or record vanished.
func (c *Controller) reconcileContainer(ctx context.Context, e desired.Entry) (Result, error) {
	cs, _ := e.Object.ContainerSpec()
	ns, id := e.Key.Namespace, e.Key.Name
	imgKey := spec.Key{Namespace: ns, Kind: spec.KindImage, Name: cs.Image}
	imgEntry, declared := c.opts.Desired.Get(imgKey)
	imgStatus, ready := c.isReady(ctx, imgKey)
	if !declared || !ready || imgStatus.Status.ImageStatus == nil {
		if !declared {
			return c.imageNotDeclared(ctx, e, cs.Image), nil
		}
		msg := fmt.Sprintf("waiting for Image %s/%s to be ready", ns, cs.Image)
		return Result{Changed: c.record(ctx, e, observation{reason: "WaitingForImage", message: msg, owns: id})}, nil
	}
	is, _ := imgEntry.Object.ImageSpec()
	imgName, _ := imageName(is)
	// During an update of the image, the digest this Container may use.
	imgName, digest := containerImage(imgName, imgStatus.Status.ImageStatus, id)
	// Probes are not part of what the container is made from.
	instance := spec.InstanceHash(e.Object)
	want := spec.ContainerInstanceHash(instance, digest)
	netHash, netDeclared := c.networkHash(ns, cs)
	if netDeclared {
		netKey := spec.Key{Namespace: ns, Kind: spec.KindNetwork, Name: string(cs.Network)}
		if _, ready := c.isReady(ctx, netKey); !ready {
			msg := fmt.Sprintf("waiting for Network %s/%s to be ready", ns, cs.Network)
			return Result{Changed: c.record(ctx, e, observation{reason: "WaitingForNetwork", message: msg, owns: id})}, nil
		}
	}

	prevStatus, _ := c.opts.DB.GetStatus(ctx, e.Key)
	existing, err := c.opts.DB.GetContainer(ctx, ns, id)
	if err != nil && !errdefs.IsNotFound(err) {
		return Result{}, err
	}
	// The plan (package plan, which berth diff prints too) decides between
	// nothing, create and recreate. A changed Network recreates its
	// containers; a Network no longer declared (refused removal while in
	// use) disturbs none.
	facts := plan.ContainerFacts{Exists: err == nil}
	if facts.Exists {
		facts.InstanceHash, facts.NetworkHash = existing.Labels[spec.LabelSpecHash], existing.Labels[spec.LabelNetworkHash]
		facts.ImageDigest = existing.ImageDigest
		facts.SnapshotPresent = c.snapshotPresent(ctx, existing.Snapshotter, existing.SnapshotKey)
	}
	acts := plan.Container(plan.ContainerWant{Hash: instance, ImageDigest: digest, Network: netHash, NetworkDeclared: netDeclared}, facts)
	switch {
	case len(acts) == 0:
		changed := c.record(ctx, e, observation{ready: true, owns: id, kind: c.containerKindStatus(ns, id, existing.SnapshotKey, e.Hash, digest)})
		// A spec changed in what does not recreate the container (its
		// probes): its Task, which may have looked while the status was
		// of the old spec, looks again.
		return Result{Changed: changed || prevStatus.SpecHash != e.Hash}, nil
	case plan.Has(acts, plan.Recreate):
		if !facts.SnapshotPresent && existing.Labels[spec.LabelSpecHash] == want {
			c.repaired(ctx, e.Key, "snapshot "+existing.SnapshotKey+" was removed; recreating the container")
		}
		// A new spec the policy refuses does not tear down the container
		// running the previous one.
		if st, serr := containerSettings(e.Object, cs); serr == nil {
			if perr := c.opts.Node.CheckPolicy(ns, st); perr != nil {
				return c.policyRefused(ctx, e, perr, "; the container of the previous spec is kept"), nil
			}
		}
		c.record(ctx, e, observation{reason: "Recreating", message: acts[0].Reason, owns: id})
		if err := c.removeContainer(ctx, ns, id, c.taskStopTimeout(ctx, ns, id)); err != nil {
			return Result{}, err
		}
	default: // plan.Create
		if prevStatus.Status.ContainerStatus != nil && prevStatus.SpecHash == e.Hash {
			c.repaired(ctx, e.Key, "container was removed; recreating it")
		}
	}
	settings, err := containerSettings(e.Object, cs)
	if err != nil {
		return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "InvalidSpec", message: err.Error(), owns: id})}, nil
	}
	labels := map[string]string{spec.LabelOwner: "Container/" + id, spec.LabelSpecHash: want}
	if netDeclared {
		labels[spec.LabelNetworkHash] = netHash
	}
	ctr, err := c.opts.Node.CreateContainer(ctx, ns, id, imgName, is.Snapshotter, settings, labels)
	if v := (*policy.Violation)(nil); errors.As(err, &v) {
		return c.policyRefused(ctx, e, err, ""), nil
	}
	if err != nil {
		reason := "CreateFailed"
		if errdefs.IsConflict(err) {
			// A host port another container publishes: that one keeps it.
			reason = "PortConflict"
		}
		c.record(ctx, e, observation{degraded: true, reason: reason, message: err.Error(), owns: id})
		return Result{}, err
	}
	return Result{Changed: true, RequeueAfter: 0}, c.recordCreated(ctx, e, ctr.SnapshotKey, digest)
}

// policyRefused records a Container the node policy refuses: Degraded,
// reason PolicyViolation, the message naming the policy key. It is not
// retried: the policy is berthd's configuration and changes only with a
// restart, which reconciles everything again.
func (c *Controller) policyRefused(ctx context.Context, e desired.Entry, err error, note string) Result {
	return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "PolicyViolation", message: err.Error() + note, owns: e.Key.Name})}
}

// imageNotDeclaredGrace is how long a Container may wait for its Image to
// be declared before it is Degraded: manifests written one file at a time,
// or an apply set that lists the Container first, declare the Image soon
// after, and that is progress, not an error.
var imageNotDeclaredGrace = 10 * time.Second

// imageNotDeclared records a Container whose Image is not declared:
// Progressing during the grace, then Degraded with reason ImageNotDeclared.
// The grace is counted from the recorded Progressing condition of this
// spec, so a restart of berthd does not start it again.
func (c *Controller) imageNotDeclared(ctx context.Context, e desired.Entry, image string) Result {
	ns, id := e.Key.Namespace, e.Key.Name
	msg := fmt.Sprintf("Image %s/%s is not declared", ns, image)
	wait := imageNotDeclaredGrace
	if prev, err := c.opts.DB.GetStatus(ctx, e.Key); err == nil && prev.SpecHash == e.Hash && prev.Status.ObservedGeneration == e.Generation {
		if d, ok := prev.Status.Condition(spec.ConditionDegraded); ok && d.Status == spec.ConditionTrue && d.Reason == "ImageNotDeclared" {
			wait = 0
		} else if p, ok := prev.Status.Condition(spec.ConditionProgressing); ok && p.Status == spec.ConditionTrue && !p.LastTransitionTime.IsZero() {
			wait -= time.Since(p.LastTransitionTime)
		}
	}
	if wait <= 0 {
		msg += fmt.Sprintf("; spec.image names an Image object in namespace %s: declare {kind: Image, metadata: {name: %s}, spec: {ref: <image reference>}}", ns, image)
		return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "ImageNotDeclared", message: msg, owns: id})}
	}
	changed := c.record(ctx, e, observation{reason: "WaitingForImage", message: msg, owns: id})
	// Nothing else wakes this Container when the grace ends.
	return Result{Changed: changed, RequeueAfter: wait}
}

func (c *Controller) recordCreated(ctx context.Context, e desired.Entry, snapshotKey, digest string) error {
	c.record(ctx, e, observation{ready: true, owns: e.Key.Name, kind: c.containerKindStatus(e.Key.Namespace, e.Key.Name, snapshotKey, e.Hash, digest)})
	return nil
}

// containerKindStatus is a Container's observed part: its snapshot, what
// it was created from and, when bridged, its network attachment.
func (c *Controller) containerKindStatus(ns, id, snapshotKey, specHash, digest string) func(*spec.Status) {
	a, attached := c.opts.Node.ContainerNetwork(ns, id)
	return func(st *spec.Status) {
		st.ContainerStatus = &spec.ContainerStatus{SnapshotKey: snapshotKey, SpecHash: specHash, ImageDigest: digest}
		if attached {
			st.Network, st.Addresses = a.Network, a.IPs
			for _, p := range a.Ports {
				st.Ports = append(st.Ports, spec.Port{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: p.Protocol, HostIP: p.HostIP})
			}
		}
	}
}

func (c *Controller) snapshotPresent(ctx context.Context, snapshotter, key string) bool {
	sn, _, err := c.opts.Node.Snapshotter(snapshotter)
	if err != nil {
		return false
	}
	_, err = sn.Stat(ctx, key)
	return !errdefs.IsNotFound(err)
}

// removeContainer stops the container's task and removes the container and
// its snapshot. Absent parts are fine.
func (c *Controller) removeContainer(ctx context.Context, ns, id string, stopTimeout time.Duration) error {
	if err := c.stopTask(ctx, ns, id, stopTimeout); err != nil {
		return err
	}
	if err := c.opts.Node.DeleteContainer(ctx, ns, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s/%s: %w", ns, id, err)
	}
	return nil
}

// stopTask sends the container's stop signal (SIGTERM unless it or its
// image names another), waits up to timeout, then SIGKILL, and deletes
// the task. No task is fine.
func (c *Controller) stopTask(ctx context.Context, ns, id string, timeout time.Duration) error {
	info, err := c.opts.Node.GetTask(ctx, ns, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Status.Live() {
		if info.Status == spec.TaskPhasePaused {
			_ = c.opts.Node.ResumeTask(ctx, ns, id)
		}
		_ = c.opts.Node.KillTask(ctx, ns, id, "", c.opts.Node.StopSignal(ctx, ns, id), false)
		wctx, cancel := context.WithTimeout(ctx, timeout)
		_, werr := c.opts.Node.WaitTask(wctx, ns, id, "")
		cancel()
		if werr != nil {
			_ = c.opts.Node.KillTask(ctx, ns, id, "", syscall.SIGKILL, true)
			kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, _ = c.opts.Node.WaitTask(kctx, ns, id, "")
			cancel()
		}
	}
	if _, err := c.opts.Node.DeleteTask(ctx, ns, id, true); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task %s/%s: %w", ns, id, err)
	}
	return nil
}

// containerSettings translates a Container spec into the node's settings
// (oci.FromSpec, the translator the API's mounts share).
func containerSettings(o spec.Object, cs spec.ContainerSpec) (node.ContainerSettings, error) {
	st, err := oci.FromSpec(o, cs)
	return node.ContainerSettings{Runtime: cs.Runtime, Settings: st, Network: node.NetworkFromSpec(cs)}, err
}
