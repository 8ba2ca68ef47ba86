package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"berth.dev/berth/internal/span"
	"berth.dev/berth/observed"
	"berth.dev/berth/oci"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ContainerSettings are what a user asks of a container: the OCI settings
// (ID and Namespace are filled in by CreateContainer) plus the runtime's
// name ("" is the configured default).
type ContainerSettings struct {
	oci.Settings
	Runtime string `json:"runtime,omitempty"`
	// Network, when set, puts the container on a bridged network (the
	// Settings' NetworkHost is false: host and none have no Network).
	Network *NetworkSettings `json:"network,omitempty"`
	// LogPath, when set, is where the container's output log is written
	// instead of under the root, and it is never rotated by size: whoever
	// chose the path rotates it (the kubelet does, then asks the CRI to
	// reopen it; the shim follows a rename).
	LogPath string `json:"logPath,omitempty"`
	// NetworkFilesOf names a container (a pod's sandbox) whose network
	// namespace this one joins: its hosts, resolv.conf and hostname are
	// bind-mounted here too, where no mount of the settings covers them.
	// They are berth's own files under the state directory, so they are
	// added after the policy check, as a bridged container's are.
	NetworkFilesOf string `json:"networkFilesOf,omitempty"`
}

// CreateContainer creates container id of namespace ns from an image of
// that namespace: it unpacks the image onto the snapshotter if it is not,
// prepares the container's writable snapshot (key SnapshotKey(ns, id),
// parent the image's chain ID), generates the OCI spec against that rootfs
// and records the container. A create that fails leaves nothing behind.
func (n *Node) CreateContainer(ctx context.Context, ns, id, image, snapshotter string, settings ContainerSettings, labels map[string]string) (observed.Container, error) {
	if err := spec.ValidateName("container id", id); err != nil {
		return observed.Container{}, err
	}
	if err := n.CheckPolicy(ns, settings); err != nil {
		return observed.Container{}, err
	}
	// A create in a namespace that does not exist yet creates it, as a
	// pull or an import does (and containerd): `berth -n new run` works.
	if _, err := n.opts.DB.EnsureNamespace(ctx, ns); err != nil {
		return observed.Container{}, err
	}
	unlock, err := n.tt.locks.lock(ctx, ns, id, true)
	if err != nil {
		return observed.Container{}, err
	}
	defer unlock()
	if _, err := n.opts.DB.GetContainer(ctx, ns, id); err == nil {
		return observed.Container{}, fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrAlreadyExists)
	}
	sn, snName, err := n.Snapshotter(snapshotter)
	if err != nil {
		return observed.Container{}, err
	}
	if _, err := n.runtimeBinary(settings.Runtime); err != nil {
		return observed.Container{}, err
	}
	img, err := n.opts.DB.GetImage(ctx, ns, image)
	if err != nil {
		return observed.Container{}, err
	}
	endCfg := span.Start(ctx, "image.config")
	_, cfg, err := n.ImageConfig(ctx, img, "")
	endCfg()
	if err != nil {
		return observed.Container{}, err
	}
	endCheck := span.Start(ctx, "lease.check")
	err = n.checkLease(ctx, ns)
	endCheck()
	if err != nil {
		return observed.Container{}, err
	}
	endLease := span.Start(ctx, "lease.begin")
	release := n.begin(ctx, ns, "container-create")
	endLease()
	defer func() {
		defer span.Start(ctx, "lease.end")()
		release()
	}()
	chainID := img.Unpacked[snName]
	if chainID != "" {
		if _, err := sn.Stat(ctx, chainID); err != nil {
			chainID = ""
		}
	}
	if chainID == "" {
		if chainID, err = n.Unpack(ctx, ns, image, snName, "", nil); err != nil {
			return observed.Container{}, err
		}
	}
	key, err := SnapshotKey(ns, id)
	if err != nil {
		return observed.Container{}, err
	}
	// The key is the container's, and no record claims it (checked under
	// the lock): a snapshot under it is what a create cut short by a crash
	// left between prepare and record, and would fail every retry.
	if _, err := sn.Stat(ctx, key); err == nil {
		n.log.Warn("removing stale snapshot of a container with no record (create cut short)", "namespace", ns, "id", id, "key", key)
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			return observed.Container{}, fmt.Errorf("remove stale snapshot %s of container %s: %w", key, id, err)
		}
	}
	endPrep := span.Start(ctx, "snapshot.prepare")
	mounts, err := sn.Prepare(ctx, key, chainID, snapshot.WithLabels(map[string]string{"berth.dev/container": id}))
	endPrep()
	if err != nil {
		return observed.Container{}, fmt.Errorf("prepare snapshot for container %s: %w", id, err)
	}
	ok := false
	defer func() {
		if !ok {
			if err := sn.Remove(context.WithoutCancel(ctx), key); err != nil && !errdefs.IsNotFound(err) {
				n.log.Warn("remove snapshot of failed container create", "key", key, "err", err)
			}
		}
	}()
	settings.ID, settings.Namespace = id, ns
	gen := settings.Settings
	if settings.Network != nil {
		a, err := n.attach(ctx, ns, id, settings)
		if err != nil {
			return observed.Container{}, err
		}
		defer func() {
			if !ok {
				if err := n.opts.Network.Detach(context.WithoutCancel(ctx), ns, id); err != nil {
					n.log.Warn("detach network of failed container create", "id", id, "err", err)
				}
			}
		}()
		gen = n.withNetwork(ns, id, gen, a)
	}
	if settings.NetworkFilesOf != "" && n.opts.Network != nil {
		gen = n.withNetworkFilesOf(ns, settings.NetworkFilesOf, gen)
	}
	spec, err := n.generateSpec(ctx, mounts, cfg.Config, gen)
	if err != nil {
		return observed.Container{}, err
	}
	if err := n.checkSpecPolicy(ns, settings.Settings, spec); err != nil {
		return observed.Container{}, err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return observed.Container{}, err
	}
	setJSON, err := json.Marshal(settings)
	if err != nil {
		return observed.Container{}, err
	}
	endDB := span.Start(ctx, "db.create")
	c, err := n.opts.DB.CreateContainer(ctx, ns, observed.Container{
		ID: id, Image: image, ImageDigest: img.Target.Digest.String(),
		Snapshotter: snName, SnapshotKey: key, Runtime: settings.Runtime,
		Settings: setJSON, Spec: specJSON, SpecHash: fmt.Sprintf("sha256:%x", sha256.Sum256(specJSON)),
		Labels: labels,
	})
	endDB()
	if err != nil {
		return c, err
	}
	ok = true
	if LeaseFrom(ctx) != "" {
		rs, err := n.imageResources(ctx, img)
		if err == nil {
			err = n.addToLease(ctx, ns, append(rs, observed.LeaseResource{Type: observed.ResourceSnapshot + "/" + snName, ID: key})...)
		}
		if err != nil {
			n.log.Warn("add container to lease", "container", id, "lease", LeaseFrom(ctx), "err", err)
		}
	}
	n.publish(ctx, ns, "/containers/create", map[string]any{"id": id, "image": image, "runtime": settings.Runtime})
	return c, nil
}

// generateSpec generates the spec against the image's files, which it
// reads for /etc/passwd and /etc/group. A snapshot just prepared holds
// nothing of its own yet, so those are read in place from the parent's
// directory or through a read-only overlay of the parents
// (snapshot.ImageFiles): no writable mount, whose unmount would sync the
// whole upper filesystem. Other mount shapes are mounted on a scratch
// directory as they are. The spec's root is "rootfs", relative to the
// bundle.
func (n *Node) generateSpec(ctx context.Context, mounts []snapshot.Mount, img ocispec.ImageConfig, s oci.Settings) (*specs.Spec, error) {
	if s.Init {
		s.InitPath = n.opts.Tasks.InitBinary
	}
	rootDir, ro, ok := snapshot.ImageFiles(mounts)
	if ok && rootDir != "" {
		defer span.Start(ctx, "spec.generate")()
		spec, err := oci.Generate(ctx, rootDir, img, s)
		if err != nil {
			return nil, err
		}
		spec.Root.Path = "rootfs"
		return spec, nil
	}
	if ok {
		mounts = ro
	}
	tmpRoot := filepath.Join(n.opts.Tasks.State, ".tmp")
	if err := os.MkdirAll(tmpRoot, 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmpRoot, "rootfs-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	endMount := span.Start(ctx, "spec.mount")
	if err := snapshot.MountAll(mounts, dir); err != nil {
		return nil, fmt.Errorf("mount rootfs to generate the spec: %w", err)
	}
	endMount()
	endGen := span.Start(ctx, "spec.generate")
	spec, gerr := oci.Generate(ctx, dir, img, s)
	endGen()
	endUnmount := span.Start(ctx, "spec.unmount")
	defer endUnmount()
	if err := snapshot.UnmountAll(dir); err != nil {
		return nil, errors.Join(gerr, err)
	}
	if gerr != nil {
		return nil, gerr
	}
	spec.Root.Path = "rootfs"
	return spec, nil
}

// DeleteContainer removes a container's snapshot and record. It is
// refused (FailedPrecondition) while the container has a task or while a
// create of it is in flight: waiting would delete what that create made
// the moment it was made.
func (n *Node) DeleteContainer(ctx context.Context, ns, id string) error {
	if n.tt.locks.creatingContainer(ns, id) {
		return fmt.Errorf("container %s is being created (delete it once created): %w", id, errdefs.ErrFailedPrecondition)
	}
	unlock, err := n.tt.locks.lock(ctx, ns, id, false)
	if err != nil {
		return err
	}
	defer unlock()
	c, err := n.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return err
	}
	if t := n.tasks().get(ns, id); t != nil {
		return fmt.Errorf("container %s has a task (delete it first: berth task rm %s): %w", id, id, errdefs.ErrFailedPrecondition)
	}
	if sn, _, err := n.Snapshotter(c.Snapshotter); err == nil {
		endRm := span.Start(ctx, "snapshot.remove")
		err := sn.Remove(ctx, c.SnapshotKey)
		endRm()
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove snapshot of container %s: %w", id, err)
		}
	} else {
		n.log.Warn("container's snapshotter is gone; removing the record only", "id", id, "snapshotter", c.Snapshotter)
	}
	// Detached before the record goes: a detach that fails leaves the
	// container to delete again, never an attachment nobody owns (and
	// Recover releases what a crash in between leaves).
	if n.opts.Network != nil {
		if err := n.opts.Network.Detach(ctx, ns, id); err != nil {
			return fmt.Errorf("detach network of container %s: %w", id, err)
		}
	} else if _, bridged := storedNetwork(c.Settings); bridged {
		n.log.Warn("container's network cannot be detached: networking is not configured", "id", id)
	}
	endDB := span.Start(ctx, "db.delete")
	err = n.opts.DB.DeleteContainer(ctx, ns, id)
	endDB()
	if err != nil {
		return err
	}
	n.publish(ctx, ns, "/containers/delete", map[string]any{"id": id})
	return nil
}

// publish puts an event on the bus and logs it, so an operator (and the
// tests) can count what was reported from the log alone.
func (n *Node) publish(ctx context.Context, ns, topic string, payload map[string]any) {
	n.opts.Events.Publish(ctx, ns, topic, payload)
	n.log.Info("event", "topic", topic, "namespace", ns, "id", payload["id"])
}

// StopSignal is the signal a stop of the container's task sends first:
// the one its spec records (the container's stopSignal, else the image's
// STOPSIGNAL), else SIGTERM.
func (n *Node) StopSignal(ctx context.Context, ns, id string) syscall.Signal {
	c, err := n.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return syscall.SIGTERM
	}
	var sp struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(c.Spec, &sp) != nil {
		return syscall.SIGTERM
	}
	if v := sp.Annotations[oci.StopSignalAnnotation]; v != "" {
		if sig, err := spec.ParseSignal(v); err == nil {
			return sig
		}
	}
	return syscall.SIGTERM
}
