// Command bench-storage compares the snapshotters on one filesystem: it
// makes a loopback btrfs, and on it times unpacking the debian test image
// with the btrfs snapshotter and with overlayfs, and `berth container
// commit` of a busybox container that wrote 10 MB (gzip and zstd), each a
// median of -runs. Run it as root through `make bench`.
package main

import (
	"berth.dev/berth/internal/benchkit"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	images := flag.String("images", os.Getenv("BERTH_TESTIMAGES"), "test image layouts (make testimages)")
	bin := flag.String("bin", "bin", "directory of berthd and berth")
	runs := flag.Int("runs", 3, "runs per figure (the median is printed)")
	flag.Parse()
	if err := run(*images, *bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench-storage:", err)
		os.Exit(1)
	}
}

const (
	uncompressedMB = 121.37 // debian layer (images.txt)
	changedMB      = 10
)

func sh(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// loopBtrfs makes a sparse file, a btrfs on it, attaches and mounts it;
// the returned func undoes all three.
func loopBtrfs(work string) (string, func(), error) {
	img, mnt := filepath.Join(work, "btrfs.img"), filepath.Join(work, "btrfs")
	f, err := os.Create(img)
	if err != nil {
		return "", nil, err
	}
	f.Truncate(8 << 30)
	f.Close()
	if _, err := sh("mkfs.btrfs", "-q", "-f", img); err != nil {
		return "", nil, fmt.Errorf("%w (make deps installs btrfs-progs)", err)
	}
	dev, err := sh("losetup", "--find", "--show", img)
	if err != nil {
		return "", nil, err
	}
	os.MkdirAll(mnt, 0o700)
	if _, err := sh("mount", "-t", "btrfs", dev, mnt); err != nil {
		sh("losetup", "-d", dev)
		return "", nil, err
	}
	return mnt, func() {
		if _, err := sh("umount", "-R", mnt); err != nil {
			sh("umount", "-l", mnt)
		}
		sh("losetup", "-d", dev)
	}, nil
}

func run(images, bin string, runs int) error {
	bin, _ = filepath.Abs(bin)
	work, err := os.MkdirTemp("/tmp", "berth-bench-storage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	mnt, undo, err := loopBtrfs(work)
	if err != nil {
		return err
	}
	defer undo()

	sns := []string{"overlayfs", "btrfs"}
	rows := []struct {
		what string
		mb   float64
		fn   func(d *benchkit.Berthd, sn string, i int) (time.Duration, error)
	}{
		{"unpack debian", uncompressedMB, func(d *benchkit.Berthd, sn string, i int) (time.Duration, error) {
			if _, err := d.CLI("image", "import", "--unpack=false", filepath.Join(images, "debian")); err != nil {
				return 0, err
			}
			return d.CLI("image", "unpack", "--snapshotter", sn, "debian:latest")
		}},
		{"container commit, 10 MB changed (gzip)", changedMB, commit(images, "gzip")},
		{"container commit, 10 MB changed (zstd)", changedMB, commit(images, "zstd")},
	}
	times := map[string][]time.Duration{}
	for ri, r := range rows {
		for _, sn := range sns {
			for i := 0; i < runs; i++ {
				root := filepath.Join(mnt, fmt.Sprintf("%s-%d-%d", sn, ri, i))
				d, err := startBerthd(bin, root, filepath.Join(work, fmt.Sprintf("s%d%d%s", ri, i, sn[:1])), sn)
				if err != nil {
					return err
				}
				took, err := r.fn(d, sn, i)
				d.Stop()
				if err != nil {
					return err
				}
				times[fmt.Sprint(ri, sn)] = append(times[fmt.Sprint(ri, sn)], took)
			}
		}
	}
	fmt.Printf("\nberth storage — overlayfs and btrfs snapshotters on the same loopback btrfs, median of %d\n\n", runs)
	fmt.Printf("%-40s %12s %12s %12s %12s\n", "operation", "overlayfs s", "MB/s", "btrfs s", "MB/s")
	for ri, r := range rows {
		o, b := benchkit.Median(times[fmt.Sprint(ri, "overlayfs")]), benchkit.Median(times[fmt.Sprint(ri, "btrfs")])
		fmt.Printf("%-40s %12.2f %12.1f %12.2f %12.1f\n", r.what, o.Seconds(), r.mb/o.Seconds(), b.Seconds(), r.mb/b.Seconds())
	}
	return nil
}

// commit times `berth container commit` of a busybox container that wrote
// 10 MB of random data (incompressible: the layer is as large).
func commit(images, compression string) func(d *benchkit.Berthd, sn string, i int) (time.Duration, error) {
	return func(d *benchkit.Berthd, sn string, i int) (time.Duration, error) {
		if _, err := d.CLI("image", "import", "--snapshotter", sn, filepath.Join(images, "busybox")); err != nil {
			return 0, err
		}
		id := fmt.Sprintf("bench-commit-%d", i)
		if _, err := d.CLI("run", "--snapshotter", sn, "busybox:latest", id, "dd", "if=/dev/urandom", "of=/changed", "bs=1M", fmt.Sprint("count=", changedMB)); err != nil {
			return 0, err
		}
		took, err := d.CLI("container", "commit", "--compression", compression, id, fmt.Sprintf("bench/commit:%d", i))
		d.CLI("container", "rm", id)
		return took, err
	}
}

// startBerthd runs berthd with snapshotter as its configured default.
func startBerthd(bin, root, state, snapshotter string) (*benchkit.Berthd, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfg, []byte("snapshotter: "+snapshotter+"\n"), 0o600); err != nil {
		return nil, err
	}
	return benchkit.StartBerthdAt(bin, root, state, "--config", cfg)
}
