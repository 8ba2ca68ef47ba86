package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testimage"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// btrfsDaemon starts berthd with its root on a fresh loopback btrfs and no
// snapshotter configured: btrfs must be picked as the default.
func btrfsDaemon(t *testing.T) (*harness.Daemon, string) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	mnt := testutil.Btrfs(t, testutil.BtrfsOptions{Size: 2 << 30})
	d := harness.StartDaemon(t, harness.DaemonOptions{Root: filepath.Join(mnt, "root"), LogLevel: "info", AllowUncleanStop: true})
	if !strings.Contains(d.Log(), "btrfs is the default snapshotter") {
		t.Errorf("berthd on a btrfs root did not pick btrfs as its default:\n%s", d.Log())
	}
	return d, mnt
}

// TestBtrfs_Commit: busybox unpacked on btrfs by default, and the commit
// test of the other snapshotters on it.
func TestBtrfs_Commit(t *testing.T) {
	d, _ := btrfsDaemon(t)
	images := testutil.TestImages(t, "busybox")
	d.MustCLI(t, "image", "import", filepath.Join(images, "busybox"))
	if imgs := listImages(t, d); imgs["busybox:latest"].Unpacked["btrfs"] == "" {
		t.Fatalf("busybox not unpacked on btrfs, the default: %+v", imgs["busybox:latest"])
	}
	testCommit(t, d, "btrfs")
}

// TestBtrfs_LayeredWhiteouts: the layered test image unpacked on btrfs has
// exactly the tree its layers describe (whiteouts, opaque directories,
// links, modes, owners).
func TestBtrfs_LayeredWhiteouts(t *testing.T) {
	d, _ := btrfsDaemon(t)
	images := testutil.TestImages(t, "layered")
	d.MustCLI(t, "image", "import", filepath.Join(images, "layered"))
	chain := listImages(t, d)["layered:latest"].Unpacked["btrfs"]
	if chain == "" {
		t.Fatalf("layered not unpacked on btrfs: %+v", listImages(t, d))
	}
	target := t.TempDir()
	mount := d.MustCLI(t, "snapshot", "view", "--target", target, "layered-view", chain)
	if out, err := exec.Command("sh", "-c", mount).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", mount, err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", target, err, out)
		}
		d.MustCLI(t, "snapshot", "rm", "layered-view")
	}()
	for _, msg := range testimage.CheckLayered(target) {
		t.Error(msg)
	}
	// Committed layers are read-only subvolumes.
	if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err == nil {
		t.Error("wrote into a view of a committed layer")
	}
}

// TestBtrfs_KillDuringUnpack: berthd killed with SIGKILL while it applies
// a layer leaves no subvolume that counts as committed, and no subvolume
// without metadata after the restart; the image then unpacks and runs.
func TestBtrfs_KillDuringUnpack(t *testing.T) {
	d, mnt := btrfsDaemon(t)
	images := testutil.TestImages(t, "debian")
	snaps := filepath.Join(d.Root, "snapshots", "btrfs", "snapshots")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	imp := d.CLICommand(ctx, "image", "import", filepath.Join(images, "debian"))
	if err := imp.Start(); err != nil {
		t.Fatal(err)
	}
	// The debian layer is applied into an extract snapshot (the only one):
	// kill as soon as its tree has begun to fill.
	applying := func() bool {
		entries, _ := os.ReadDir(snaps)
		for _, e := range entries {
			if _, err := strconv.ParseUint(e.Name(), 10, 64); err != nil {
				continue
			}
			if fs, _ := os.ReadDir(filepath.Join(snaps, e.Name(), "fs")); len(fs) > 0 {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(90 * time.Second)
	for !applying() {
		if time.Now().After(deadline) {
			t.Fatal("the debian layer never started to be applied")
		}
		time.Sleep(2 * time.Millisecond)
	}
	d.Kill9()
	_ = imp.Wait()

	d.Restart()
	committed := strings.Count(d.MustCLI(t, "snapshot", "ls"), "Committed")
	if committed != 0 {
		// The commit won the race with the kill: then it must be whole.
		t.Logf("the layer was committed before the kill landed (%d committed)", committed)
	}
	subvols := strings.Count(run(t, "btrfs", "subvolume", "list", "-o", snaps), "\n")
	dirs, _ := os.ReadDir(snaps)
	if subvols != committed || len(dirs) != committed {
		t.Errorf("after restart: %d subvolumes and %d snapshot directories under %s for %d committed snapshots (a half-made one survived)\n%s",
			subvols, len(dirs), snaps, committed, run(t, "btrfs", "subvolume", "list", mnt))
	}
	if !strings.Contains(d.Log(), "removing stale extract snapshot") && committed == 0 {
		t.Errorf("the interrupted unpack's extract snapshot was not removed at start:\n%s", d.Log())
	}

	// The image unpacks again and runs.
	d.MustCLI(t, "image", "unpack", "debian:latest")
	if r := d.CLI("run", "--rm", "debian:latest", "deb-after-kill", "cat", "/etc/debian_version"); r.ExitCode != 0 || strings.TrimSpace(r.Stdout) == "" {
		t.Errorf("run debian after the interrupted unpack: %s", r)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
