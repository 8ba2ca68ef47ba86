// Command bench measures berth's image path and prints a table: a cold pull
// of the debian test image from Debian's docker-registry on 127.0.0.1, pull
// plus unpack, and unpack alone from the local store — each with berthd's
// root on tmpfs and on this machine's disk, side by side. Run it as root
// through `make bench`.
package main

import (
	"berth.dev/berth/internal/benchkit"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	images := flag.String("images", os.Getenv("BERTH_TESTIMAGES"), "test image layouts (make testimages)")
	bin := flag.String("bin", "bin", "directory of berthd and berth")
	runs := flag.Int("runs", 3, "runs per figure (the median is printed)")
	flag.Parse()
	if err := run(*images, *bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const (
	compressedMB   = 48.75 // debian layer, gzip (images.txt)
	uncompressedMB = 121.37
)

func run(images, bin string, runs int) error {
	bin, _ = filepath.Abs(bin)
	work, err := os.MkdirTemp("/tmp", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	tmpfs := filepath.Join(work, "tmpfs")
	os.MkdirAll(tmpfs, 0o700)
	if err := syscall.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=4g"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	defer syscall.Unmount(tmpfs, syscall.MNT_DETACH)

	addr, stop, err := benchkit.StartRegistry(filepath.Join(work, "registry"), "")
	if err != nil {
		return err
	}
	defer stop()
	ref := addr + "/library/debian:latest"
	if err := benchkit.Push(filepath.Join(images, "debian"), ref); err != nil {
		return err
	}

	type row struct {
		what  string
		mb    float64
		times map[string][]time.Duration
	}
	rows := []*row{
		{what: "cold pull (no unpack)", mb: compressedMB},
		{what: "cold pull + unpack", mb: uncompressedMB},
		{what: "unpack alone (local store)", mb: uncompressedMB},
	}
	for _, r := range rows {
		r.times = map[string][]time.Duration{}
	}
	places := []struct{ name, dir string }{{"tmpfs", tmpfs}, {"disk", filepath.Join(work, "disk")}}
	for _, place := range places {
		for i := 0; i < runs; i++ {
			root := filepath.Join(place.dir, fmt.Sprint(i))
			d, err := benchkit.StartBerthd(bin, root)
			if err != nil {
				return err
			}
			steps := []struct {
				r    *row
				args []string
			}{
				{rows[0], []string{"image", "pull", "--unpack=false", ref}},
				{rows[2], []string{"image", "unpack", ref}},
				{nil, []string{"image", "rm", "--sync", ref}},
				{rows[1], []string{"image", "pull", ref}},
			}
			for _, s := range steps {
				took, err := d.CLI(s.args...)
				if err != nil {
					d.Stop()
					return err
				}
				if s.r != nil {
					s.r.times[place.name] = append(s.r.times[place.name], took)
				}
			}
			d.Stop()
			os.RemoveAll(root)
		}
	}
	fmt.Printf("\nberth image path — debian test image (%.1f MB gzip, %.1f MB unpacked), median of %d\n\n", compressedMB, uncompressedMB, runs)
	fmt.Printf("%-30s %12s %12s %12s %12s\n", "operation", "tmpfs s", "tmpfs MB/s", "disk s", "disk MB/s")
	for _, r := range rows {
		t, dk := benchkit.Median(r.times["tmpfs"]), benchkit.Median(r.times["disk"])
		fmt.Printf("%-30s %12.2f %12.1f %12.2f %12.1f\n", r.what, t.Seconds(), r.mb/t.Seconds(), dk.Seconds(), r.mb/dk.Seconds())
	}
	if _, err := exec.LookPath("containerd"); err != nil {
		fmt.Println("\ncontainerd: not installed, not measured side by side (apt-get install containerd to compare)")
		fmt.Println("reference (issue 3, measured here): containerd 1.6 cold pull + unpack on tmpfs 2.1 s (58 MB/s)")
		return nil
	}
	ctr := map[string][]time.Duration{}
	for _, place := range places {
		for i := 0; i < runs; i++ {
			took, err := containerdPull(filepath.Join(place.dir, fmt.Sprintf("containerd-%d", i)), ref)
			if err != nil {
				return err
			}
			ctr[place.name] = append(ctr[place.name], took)
		}
	}
	t, dk := benchkit.Median(ctr["tmpfs"]), benchkit.Median(ctr["disk"])
	fmt.Printf("%-30s %12.2f %12.1f %12.2f %12.1f\n", "containerd: pull + unpack", t.Seconds(), uncompressedMB/t.Seconds(), dk.Seconds(), uncompressedMB/dk.Seconds())
	return nil
}

// containerdPull times `ctr image pull` (fetch + unpack onto overlayfs) of
// ref into a fresh containerd rooted at root.
func containerdPull(root, ref string) (time.Duration, error) {
	sock := filepath.Join(root, "c.sock")
	cfg := filepath.Join(root, "config.toml")
	os.MkdirAll(root, 0o700)
	os.WriteFile(cfg, []byte("version = 2\n"), 0o600)
	cmd := exec.Command("containerd", "--config", cfg, "--root", filepath.Join(root, "root"), "--state", filepath.Join(root, "state"), "--address", sock)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		exec.Command("sh", "-c", "grep -o ' "+root+"[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l").Run()
		os.RemoveAll(root)
	}()
	ready := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(20 * time.Millisecond) {
		ready = exec.Command("ctr", "--address", sock, "version").Run() == nil
	}
	if !ready {
		return 0, fmt.Errorf("containerd did not start under %s", root)
	}
	start := time.Now()
	out, err := exec.Command("ctr", "--address", sock, "image", "pull", "--plain-http", ref).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("ctr image pull: %v\n%s", err, out)
	}
	return took, nil
}
