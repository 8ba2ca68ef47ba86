// Package benchkit holds what berth's benchmark programs (hack/bench*)
// share: a docker-registry on loopback, pushing a test image to it, a
// berthd on a scratch root driven through the CLI, and medians. It is for
// make bench only; tests use test/harness.
package benchkit

import (
	"context"
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

// Median is the middle of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// FreePort is a TCP port free on 127.0.0.1 now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartRegistry runs Debian's docker-registry on a free loopback port
// with its storage under dir; extra is appended to its YAML config (a
// `proxy:` section makes it a pull-through cache). It returns the address
// and a stop function.
func StartRegistry(dir, extra string) (string, func(), error) {
	port, err := FreePort()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\nhttp: {addr: %q}\n%s",
		filepath.Join(dir, "storage"), addr, extra)), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start docker-registry (make deps installs it): %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
	}
	stop()
	return "", nil, fmt.Errorf("docker-registry did not answer on %s", addr)
}

// Push pushes the first image of the OCI layout at layoutDir as ref
// (plain HTTP).
func Push(layoutDir, ref string) error {
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

// Berthd is a berthd on a scratch root, without metrics or manifests.
type Berthd struct {
	cmd         *exec.Cmd
	bin, Socket string
}

// StartBerthd starts bin/berthd with its root and state under root and
// extra flags, and waits for its socket.
func StartBerthd(bin, root string, extra ...string) (*Berthd, error) {
	return StartBerthdAt(bin, root, filepath.Join(root, "state"), extra...)
}

// StartBerthdAt is StartBerthd with the state directory elsewhere (on
// tmpfs while the root is on the filesystem under test, say).
func StartBerthdAt(bin, root, state string, extra ...string) (*Berthd, error) {
	d := &Berthd{bin: bin, Socket: filepath.Join(state, "berth.sock")}
	args := append([]string{"--root", filepath.Join(root, "root"), "--state", state,
		"--address", d.Socket, "--metrics-address", "off", "--manifests", "", "--log-level", "warn",
		"--cri-address", "", "--cni-conf-dir", filepath.Join(root, "cni")}, extra...)
	d.cmd = exec.Command(filepath.Join(bin, "berthd"), args...)
	d.cmd.Stderr = os.Stderr
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", d.Socket); err == nil {
			c.Close()
			return d, nil
		}
	}
	d.Stop()
	return nil, fmt.Errorf("berthd did not start under %s", root)
}

// CLI runs berth against the daemon and returns how long it took.
func (d *Berthd) CLI(args ...string) (time.Duration, error) {
	start := time.Now()
	out, err := exec.Command(filepath.Join(d.bin, "berth"), append([]string{"--address", d.Socket}, args...)...).CombinedOutput()
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return took, nil
}

// Stop stops berthd (SIGTERM) and waits for it.
func (d *Berthd) Stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
}
