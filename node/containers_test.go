package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"berth.dev/berth/oci"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/spec"
	"golang.org/x/sys/unix"
)

// busyboxChain unpacks the test image and returns its chain ID.
func busyboxChain(t *testing.T, n *Node) string {
	t.Helper()
	chain, err := n.Unpack(context.Background(), spec.DefaultNamespace, "busybox:latest", "overlayfs", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// TestNode_CreateContainer_StaleSnapshot: a crash between preparing a
// container's snapshot and recording the container leaves the snapshot;
// the next create removes it instead of failing "already exists" forever.
func TestNode_CreateContainer_StaleSnapshot(t *testing.T) {
	n, _ := testNode(t)
	ctx := context.Background()
	ns, id := spec.DefaultNamespace, "crashed"
	sn, _, err := n.Snapshotter("")
	if err != nil {
		t.Fatal(err)
	}
	key, err := SnapshotKey(ns, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, key, busyboxChain(t, n)); err != nil {
		t.Fatal(err)
	}
	s := ContainerSettings{Settings: oci.Settings{Args: []string{"true"}}}
	c, err := n.CreateContainer(ctx, ns, id, "busybox:latest", "", s, nil)
	if err != nil {
		t.Fatalf("create over a leftover snapshot: %v", err)
	}
	if c.SnapshotKey != key {
		t.Errorf("snapshot key %q, want %q", c.SnapshotKey, key)
	}
	info, err := sn.Stat(ctx, key)
	if err != nil || info.Labels["berth.dev/container"] != id {
		t.Errorf("container's snapshot: %+v, %v; want one labelled berth.dev/container=%s", info, err, id)
	}
	// With a record, the snapshot is the container's: a second create is
	// refused and leaves it be.
	if _, err := n.CreateContainer(ctx, ns, id, "busybox:latest", "", s, nil); err == nil {
		t.Error("second create of the same container succeeded")
	}
	if _, err := sn.Stat(ctx, key); err != nil {
		t.Errorf("snapshot of the recorded container gone after a refused create: %v", err)
	}
}

// TestNode_RecoverTasks_ScratchMounts: a crash inside generateSpec leaves
// a container's snapshot mounted under <state>/.tmp; recovery unmounts it
// (and anything else mounted there) before removing the directory, so no
// file is deleted through the mount.
func TestNode_RecoverTasks_ScratchMounts(t *testing.T) {
	n, _ := testNode(t)
	ctx := context.Background()
	sn, _, err := n.Snapshotter("")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := sn.Prepare(ctx, "default/victim", busyboxChain(t, n))
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(n.opts.Tasks.State, ".tmp")
	rootfs := filepath.Join(tmp, "rootfs-123")
	nested := filepath.Join(tmp, "other", "deep")
	for _, d := range []string{rootfs, nested} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := snapshot.MountAll(mounts, rootfs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = snapshot.UnmountAll(rootfs) })
	if err := os.WriteFile(filepath.Join(rootfs, "marker"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", nested, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = snapshot.UnmountAll(nested) })
	if err := os.WriteFile(filepath.Join(nested, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := n.RecoverTasks(ctx); err != nil {
		t.Fatal(err)
	}
	if mps, err := snapshot.MountsUnder(tmp); err != nil || len(mps) > 0 {
		t.Errorf("mounts left under %s: %v, %v", tmp, mps, err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("scratch directory: stat %v, want it removed", err)
	}
	// The snapshot kept its files: the image's and the one written to it.
	check := t.TempDir()
	if err := snapshot.MountAll(mounts, check); err != nil {
		t.Fatal(err)
	}
	defer snapshot.UnmountAll(check)
	for _, f := range []string{"marker", "bin/sh", "etc/passwd"} {
		if _, err := os.Lstat(filepath.Join(check, f)); err != nil {
			t.Errorf("snapshot lost %s: %v", f, err)
		}
	}
}
