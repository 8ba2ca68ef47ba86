package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BtrfsOptions shape the filesystem Btrfs makes.
type BtrfsOptions struct {
	Size   int64 // bytes of the sparse image; default 1 GiB
	Quotas bool  // btrfs quota enable, so usage comes from qgroups
}

// Btrfs makes a btrfs filesystem on a sparse file attached to a loop
// device, mounts it on a fresh directory and returns that directory; the
// test's cleanup unmounts it and detaches the device. It needs root,
// mkfs.btrfs and losetup (make deps installs btrfs-progs).
func Btrfs(t testing.TB, opts BtrfsOptions) string {
	t.Helper()
	RequireRoot(t)
	mkfs := RequireBinary(t, "mkfs.btrfs")
	losetup := RequireBinary(t, "losetup")
	if opts.Size <= 0 {
		opts.Size = 1 << 30
	}
	dir, err := os.MkdirTemp("", "berth-btrfs-")
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fs.img")
	mnt := filepath.Join(dir, "mnt")
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(opts.Size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.RemoveAll(dir) })
	run(mkfs, "-q", "-f", img)
	dev := run(losetup, "--find", "--show", img)
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	run("mount", "-t", "btrfs", dev, mnt)
	t.Cleanup(func() {
		// Lazily: a test that failed half-way may leave a bind mount below.
		if out, err := exec.Command("umount", "-R", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v\n%s; detaching lazily", mnt, err, out)
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	if opts.Quotas {
		run("btrfs", "quota", "enable", mnt)
	}
	return mnt
}
