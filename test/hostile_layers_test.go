package test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// Hostile layers (issue 18, items 1–4) end to end: images built here are
// pushed to a registry and pulled through a real berthd configured with
// small caps. What a layer may not hold is left out or refused, berthd
// stays up, and an ordinary image still runs beside them.
func TestHostile_LayersThroughBerthd(t *testing.T) {
	testutil.RequireRoot(t)
	reg := harness.StartInProcessRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox")
	base := busyboxImage(t)

	devices := pushWithLayer(t, reg.Addr+"/hostile/devices:1", base, []tar.Header{
		{Name: "hostile/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "hostile/mem", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 1, Mode: 0o666},
		{Name: "hostile/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o666},
		{Name: "hostile/fifo", Typeflag: tar.TypeFifo, Mode: 0o644},
		{Name: "hostile/steer", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{
			"SCHILY.xattr.trusted.overlay.redirect": "/../../../../etc",
			"SCHILY.xattr.user.kept":                "yes",
		}},
	}, nil)
	wrapped := pushWithLayer(t, reg.Addr+"/hostile/uid:1", base, []tar.Header{
		{Name: "root-by-wrap", Typeflag: tar.TypeReg, Mode: 0o4755, Uid: 1 << 40, Gid: 1 << 40},
	}, map[string][]byte{"root-by-wrap": []byte("x")})
	// 4 MiB of zeros: a few KiB compressed, over the 3 MiB image cap below.
	bomb := pushWithLayer(t, reg.Addr+"/hostile/bomb:1", base, []tar.Header{
		{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644},
	}, map[string][]byte{"zeros": make([]byte, 4<<20)})

	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "unpack:\n  maxImageSize: 3Mi\n"})
	d.MustCLI(t, "image", "pull", refs["busybox"])

	// Devices are skipped, fifos kept, overlay's xattrs dropped, user.* kept.
	d.MustCLI(t, "image", "pull", devices)
	r := d.CLI("run", "--rm", devices, "dev-check", "sh", "-c",
		"test ! -e /hostile/mem && test ! -e /hostile/sda && test -p /hostile/fifo && ls /etc/passwd >/dev/null && echo clean")
	if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "clean" {
		t.Fatalf("hostile devices image: %s", r)
	}
	if log := d.Log(); !strings.Contains(log, "skippedDevices=2") || !strings.Contains(log, "droppedXattrs=1") {
		t.Errorf("berthd's log does not report the 2 skipped devices and 1 dropped xattr:\n%s", tail(log, 20))
	}
	if got := events(t, d, "/images/left-out", devices); got != 1 {
		t.Errorf("/images/left-out events for %s: %d, want 1", devices, got)
	}
	// A declared Image of it says so in its status.
	writeAtomic(t, filepath.Join(d.Manifests, "devs.yaml"), fmt.Sprintf("apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: devs}\nspec: {ref: %q, pullPolicy: IfNotPresent}\n", devices))
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		img := getObjects(t, d, "images")["devs"]
		is := img.Status.ImageStatus
		return img.ready() && is != nil && is.SkippedDevices == 2 && is.DroppedXattrs == 1, fmt.Sprintf("Image devs: %+v %+v (want skippedDevices 2, droppedXattrs 1)", is, img.Status.Conditions)
	})
	if out := d.MustCLI(t, "describe", "image", "devs"); !strings.Contains(out, "skippedDevices: 2") || !strings.Contains(out, "droppedXattrs: 1") {
		t.Errorf("describe image devs does not show what the unpack left out:\n%s", out)
	}

	// An owner that does not fit is refused, naming the entry.
	r = d.CLI("image", "pull", wrapped)
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "root-by-wrap") {
		t.Errorf("pull of a layer with uid 2^40: %s; want exit 2 naming the entry", r)
	}
	// A layer over the image cap is refused; no snapshot of it stays.
	r = d.CLI("image", "pull", bomb)
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "bytes") {
		t.Errorf("pull of an image over unpack.maxImageSize: %s; want exit 2 saying the size", r)
	}

	// berthd is alive and the ordinary image still runs.
	r = d.CLI("run", "--rm", refs["busybox"], "control", "echo", "ok")
	if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "ok" {
		t.Fatalf("control image after the hostile ones: %s", r)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// busyboxImage is the busybox test image as a go-containerregistry image.
func busyboxImage(t *testing.T) v1.Image {
	t.Helper()
	p, err := layout.FromPath(filepath.Join(testutil.TestImages(t, "busybox"), "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushWithLayer pushes base plus one gzip layer of the given entries (file
// bodies by name) to ref and returns ref.
func pushWithLayer(t *testing.T, ref string, base v1.Image, hdrs []tar.Header, bodies map[string][]byte) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h.Format = tar.FormatPAX
		body := bodies[h.Name]
		h.Size = int64(len(body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}
