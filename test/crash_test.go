package test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// slowProxy fronts a registry on 127.0.0.1 and paces blob bodies to about
// rate bytes per second, so a test can act in the middle of a pull. It
// counts the blob bytes it has served.
type slowProxy struct {
	URL    string
	served atomic.Int64
}

func startSlowProxy(t *testing.T, upstream string, rate int64) *slowProxy {
	t.Helper()
	target, _ := url.Parse("http://" + upstream)
	p := &slowProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		if strings.Contains(r.Request.URL.Path, "/blobs/") && r.Request.Method == http.MethodGet {
			r.Body = &pacedBody{rc: r.Body, rate: rate, served: &p.served}
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	p.URL = l.Addr().String()
	return p
}

type pacedBody struct {
	rc     io.ReadCloser
	rate   int64
	served *atomic.Int64
}

func (b *pacedBody) Read(p []byte) (int, error) {
	chunk := b.rate / 20
	if int64(len(p)) > chunk {
		p = p[:chunk]
	}
	n, err := b.rc.Read(p)
	b.served.Add(int64(n))
	time.Sleep(50 * time.Millisecond) // pacing the stream, not waiting for a condition
	return n, err
}

func (b *pacedBody) Close() error { return b.rc.Close() }

// checkStore asserts the invariants after a crash: every blob hashes to its
// name, and no extract snapshot is committed under a chain ID.
func checkStore(t *testing.T, root string) {
	t.Helper()
	blobs := filepath.Join(root, "content", "blobs", "sha256")
	entries, _ := os.ReadDir(blobs)
	for _, e := range entries {
		f, err := os.Open(filepath.Join(blobs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != e.Name() {
			t.Errorf("blob %s hashes to %s", e.Name(), got)
		}
	}
}

// TestCrash_KillDuringPull kills berthd with SIGKILL in the middle of a
// pull, restarts it, and checks that the store is consistent and the pull
// then succeeds, resuming what had arrived.
func TestCrash_KillDuringPull(t *testing.T) {
	testutil.RequireRoot(t)
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox")
	proxy := startSlowProxy(t, reg.Addr, 400<<10) // ~1 MiB layer: ~2.5 s
	ref := strings.Replace(refs["busybox"], reg.Addr, proxy.URL, 1)
	d := harness.StartDaemon(t, harness.DaemonOptions{AllowUncleanStop: true})

	done := make(chan harness.Result, 1)
	go func() { done <- d.CLI("image", "pull", ref) }()
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		return proxy.served.Load() > 300<<10, "waiting for the layer download to be under way"
	})
	d.Kill9()
	if r := <-done; r.ExitCode == 0 {
		t.Fatalf("pull survived the kill: %s", r)
	}
	checkStore(t, d.Root)
	before := proxy.served.Load()
	d.Restart()
	d.MustCLI(t, "image", "pull", ref)
	checkStore(t, d.Root)
	imgs := listImages(t, d)
	if imgs[ref].Unpacked["overlayfs"] == "" {
		t.Errorf("image not unpacked after the retried pull: %+v", imgs[ref])
	}
	// Resumed, not restarted: far less than the whole layer again.
	if again := proxy.served.Load() - before; again > 900<<10 {
		t.Errorf("retry fetched %d bytes; the partial download should have been resumed", again)
	}
	var statuses []any
	json.Unmarshal([]byte(d.MustCLI(t, "content", "ls", "-o", "json")), &statuses)
	if len(statuses) != 3 {
		t.Errorf("blobs after pull: %d, want 3", len(statuses))
	}
}

// TestCrash_KillDuringUnpack kills berthd while it applies the debian
// layer, restarts it, and checks that nothing half-applied was committed and
// that the next unpack gives the whole tree.
func TestCrash_KillDuringUnpack(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TestImages(t, "debian")
	d := harness.StartDaemon(t, harness.DaemonOptions{AllowUncleanStop: true})
	d.MustCLI(t, "image", "import", "--unpack=false", filepath.Join(dir, "debian"))

	done := make(chan harness.Result, 1)
	go func() { done <- d.CLI("image", "unpack", "debian:latest") }()
	layers := filepath.Join(d.Root, "snapshots", "overlayfs", "snapshots")
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		n := 0
		filepath.WalkDir(layers, func(string, os.DirEntry, error) error { n++; return nil })
		return n > 500, "waiting for the unpack to be under way"
	})
	d.Kill9()
	if r := <-done; r.ExitCode == 0 {
		t.Skipf("unpack finished before the kill landed: %s", r)
	}
	d.Restart()
	if out := d.MustCLI(t, "snapshot", "ls"); strings.Contains(out, "Committed") {
		t.Fatalf("a snapshot was committed from an interrupted unpack:\n%s", out)
	}
	entries, _ := os.ReadDir(layers)
	if len(entries) != 0 {
		t.Errorf("%d snapshot dirs left from the interrupted unpack", len(entries))
	}
	chain := strings.TrimSpace(d.MustCLI(t, "image", "unpack", "debian:latest"))
	view := filepath.Join(t.TempDir(), "v")
	os.MkdirAll(view, 0o755)
	d.MustCLI(t, "snapshot", "view", "check", chain)
	mountCmd := d.MustCLI(t, "snapshot", "mounts", view, "check")
	if out, err := execShell(mountCmd); err != nil {
		t.Fatalf("%s: %v %s", mountCmd, err, out)
	}
	defer execShell("umount " + view)
	for _, p := range []string{"bin/bash", "etc/debian_version", "usr/lib/os-release"} {
		if _, err := os.Lstat(filepath.Join(view, p)); err != nil {
			t.Errorf("unpacked tree lacks %s: %v", p, err)
		}
	}
	n := 0
	filepath.WalkDir(view, func(string, os.DirEntry, error) error { n++; return nil })
	if n < 6000 {
		t.Errorf("unpacked tree holds %d entries, want the whole debian rootfs (~6,650)", n)
	}
}
