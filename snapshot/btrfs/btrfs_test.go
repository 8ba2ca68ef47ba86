package btrfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/testsuite"
)

// onLoop maps the suite's roots (under a temp dir on the host's
// filesystem) to directories on one loopback btrfs, the same root always
// to the same directory so the restart test reopens it.
func onLoop(t *testing.T, mnt string) testsuite.Factory {
	return func(t *testing.T, root string) (snapshot.Snapshotter, error) {
		sum := sha256.Sum256([]byte(root))
		return New(filepath.Join(mnt, hex.EncodeToString(sum[:8])))
	}
}

func TestBtrfs(t *testing.T) {
	mnt := testutil.Btrfs(t, testutil.BtrfsOptions{})
	testsuite.Run(t, onLoop(t, mnt))
}

// TestBtrfs_Quotas runs the suite with quotas on, where usage comes from
// qgroups, and checks that a child's usage is what it changed alone.
func TestBtrfs_Quotas(t *testing.T) {
	mnt := testutil.Btrfs(t, testutil.BtrfsOptions{Quotas: true})
	testsuite.Run(t, onLoop(t, mnt))

	ctx := context.Background()
	sn, err := New(filepath.Join(mnt, "usage"))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	write := func(key, parent string, size int) {
		t.Helper()
		ms, err := sn.Prepare(ctx, key+"-active", parent)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ms[0].Source, key), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := sn.Commit(ctx, key, key+"-active"); err != nil {
			t.Fatal(err)
		}
	}
	write("base", "", 8<<20)
	write("child", "base", 1<<20)
	for key, want := range map[string]int64{"base": 8 << 20, "child": 1 << 20} {
		u, err := sn.Usage(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		// Exclusive bytes: the file, plus a few 16 KiB metadata nodes.
		if u.Size < want || u.Size > want+256<<10 {
			t.Errorf("usage of %s: %d bytes, want about %d (its own data, not its parent's)", key, u.Size, want)
		}
	}
}

// TestBtrfs_ReadOnlyCommitted: a committed snapshot's subvolume is
// read-only; a failed commit leaves the active writable.
func TestBtrfs_ReadOnlyCommitted(t *testing.T) {
	mnt := testutil.Btrfs(t, testutil.BtrfsOptions{})
	ctx := context.Background()
	sn, err := New(filepath.Join(mnt, "sn"))
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	ms, err := sn.Prepare(ctx, "a", "")
	if err != nil {
		t.Fatal(err)
	}
	dir := ms[0].Source
	if err := sn.Commit(ctx, "c", "a"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err == nil {
		t.Error("wrote into a committed subvolume")
	}
	if ro, err := isReadonly(dir); err != nil || !ro {
		t.Errorf("committed subvolume read-only = %v, %v", ro, err)
	}
	ms, err = sn.Prepare(ctx, "b", "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "c", "b"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("commit to a taken name: %v", err)
	}
	if err := os.WriteFile(filepath.Join(ms[0].Source, "x"), nil, 0o644); err != nil {
		t.Errorf("active not writable after a failed commit: %v", err)
	}
	if err := sn.Remove(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "c"); err != nil {
		t.Fatalf("remove a read-only committed subvolume: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed subvolume still there: %v", err)
	}
}

func TestBtrfs_RefusesOtherFilesystems(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	if Supported(dir) {
		t.Skip("the temp dir is on btrfs")
	}
	_, err := New(filepath.Join(dir, "sn"))
	if err == nil || !errdefs.IsNotImplemented(err) {
		t.Fatalf("New on a non-btrfs dir: %v, want a NotImplemented error", err)
	}
	t.Log(err)
}
