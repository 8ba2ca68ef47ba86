// Command bench measures berth's image path and prints a table: a cold pull
// of the debian test image from Debian's docker-registry on 127.0.0.1, pull
// plus unpack, and unpack alone from the local store — each with berthd's
// root on tmpfs and on this machine's disk, side by side. Run it as root
// through `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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

	addr, stop, err := startRegistry(work)
	if err != nil {
		return err
	}
	defer stop()
	ref := addr + "/library/debian:latest"
	if err := push(filepath.Join(images, "debian"), ref); err != nil {
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
			d, err := startBerthd(bin, root)
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
				took, err := d.cli(s.args...)
				if err != nil {
					d.stop()
					return err
				}
				if s.r != nil {
					s.r.times[place.name] = append(s.r.times[place.name], took)
				}
			}
			d.stop()
			os.RemoveAll(root)
		}
	}
	fmt.Printf("\nberth image path — debian test image (%.1f MB gzip, %.1f MB unpacked), median of %d\n\n", compressedMB, uncompressedMB, runs)
	fmt.Printf("%-30s %12s %12s %12s %12s\n", "operation", "tmpfs s", "tmpfs MB/s", "disk s", "disk MB/s")
	for _, r := range rows {
		t, dk := median(r.times["tmpfs"]), median(r.times["disk"])
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
	t, dk := median(ctr["tmpfs"]), median(ctr["disk"])
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

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startRegistry(work string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(work, "registry.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp: {addr: %q}\n",
		filepath.Join(work, "registry"), addr)), 0o600)
	cmd := exec.Command("docker-registry", "serve", cfg)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start docker-registry (make deps installs it): %w", err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
	}
	stop()
	return "", nil, fmt.Errorf("docker-registry did not answer on %s", addr)
}

func push(layoutDir, ref string) error {
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		return fmt.Errorf("open %s (make testimages): %w", layoutDir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(r, img, remote.WithContext(context.Background()))
}

type berthd struct {
	cmd         *exec.Cmd
	bin, socket string
}

func startBerthd(bin, root string) (*berthd, error) {
	state := filepath.Join(root, "state")
	d := &berthd{bin: bin, socket: filepath.Join(state, "berth.sock")}
	d.cmd = exec.Command(filepath.Join(bin, "berthd"), "--root", filepath.Join(root, "root"), "--state", state,
		"--address", d.socket, "--metrics-address", "off", "--manifests", "", "--log-level", "warn")
	d.cmd.Stderr = os.Stderr
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return d, nil
		}
	}
	d.stop()
	return nil, fmt.Errorf("berthd did not start under %s", root)
}

func (d *berthd) cli(args ...string) (time.Duration, error) {
	start := time.Now()
	out, err := exec.Command(filepath.Join(d.bin, "berth"), append([]string{"--address", d.socket}, args...)...).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return took, nil
}

func (d *berthd) stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
}
