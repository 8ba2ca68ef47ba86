package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testimage"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/internal/units"
	"berth.dev/berth/test/harness"
)

type imageJSON struct {
	Name     string            `json:"name"`
	Digest   string            `json:"digest"`
	Size     int64             `json:"size"`
	Unpacked map[string]string `json:"unpacked"`
}

func listImages(t *testing.T, d *harness.Daemon, args ...string) map[string]imageJSON {
	t.Helper()
	var imgs []imageJSON
	out := d.MustCLI(t, append(args, "image", "ls", "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		t.Fatalf("image ls -o json: %v\n%s", err, out)
	}
	m := map[string]imageJSON{}
	for _, i := range imgs {
		m[i.Name] = i
	}
	return m
}

// TestImages_PullFromDockerRegistry pulls every test image from Debian's
// docker-registry on 127.0.0.1, checks digests against the layouts, the
// platform selection of the index, and that the pulled image is unpacked.
func TestImages_PullFromDockerRegistry(t *testing.T) {
	testutil.RequireRoot(t)
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox", "layered", "multiarch")
	d := harness.StartDaemon(t, harness.DaemonOptions{})
	dir := testutil.TestImages(t, "busybox")

	out := d.MustCLI(t, "image", "pull", refs["busybox"])
	if !strings.Contains(out, "MB/s") {
		t.Errorf("piped pull should print a one-line summary, got %q", out)
	}
	// The store was empty: what the summary says was fetched is every blob
	// it now holds (it used to leave out each blob's last chunk).
	var blobs []struct{ Size int64 }
	if err := json.Unmarshal([]byte(d.MustCLI(t, "content", "ls", "-o", "json")), &blobs); err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, b := range blobs {
		stored += b.Size
	}
	if want := ", " + units.Bytes(stored) + " fetched in "; !strings.Contains(out, want) {
		t.Errorf("pull summary %q: want %q (the %d blobs' %d bytes)", out, want, len(blobs), stored)
	}
	d.MustCLI(t, "image", "pull", "--snapshotter", "native", refs["layered"])
	d.MustCLI(t, "image", "pull", "--unpack=false", refs["multiarch"])
	imgs := listImages(t, d)
	bb := imgs[refs["busybox"]]
	if want := harness.LayoutDigest(t, filepath.Join(dir, "busybox"), ""); bb.Digest != want {
		t.Errorf("busybox digest: got %s, want %s", bb.Digest, want)
	}
	if bb.Unpacked["overlayfs"] == "" {
		t.Errorf("busybox not unpacked on overlayfs: %+v", bb)
	}
	if imgs[refs["layered"]].Unpacked["native"] == "" {
		t.Errorf("layered not unpacked on native: %+v", imgs[refs["layered"]])
	}
	if len(imgs[refs["multiarch"]].Unpacked) != 0 {
		t.Errorf("--unpack=false unpacked: %+v", imgs[refs["multiarch"]])
	}

	// The index resolves to the host's platform; --platform picks another.
	if got := configOf(t, d, refs["multiarch"], ""); !strings.Contains(got, "IMAGE_ARCH=amd64") {
		t.Errorf("default platform config: %s", got)
	}
	d.MustCLI(t, "namespace", "create", "arm")
	d.MustCLI(t, "-n", "arm", "image", "pull", "--unpack=false", "--platform", "linux/arm64", refs["multiarch"])
	if got := configOf(t, d, refs["multiarch"], "arm"); !strings.Contains(got, "IMAGE_ARCH=arm64") {
		t.Errorf("arm64 config: %s", got)
	}
}

// configOf finds the image config blob of ref among the content store's
// blobs by reading it through berth's own listing (the config mentions its env).
func configOf(t *testing.T, d *harness.Daemon, ref, ns string) string {
	t.Helper()
	out := d.MustCLI(t, "content", "ls", "-o", "json")
	var blobs []struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(out), &blobs); err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, b := range blobs {
		data, err := os.ReadFile(filepath.Join(d.Root, "content", "blobs", "sha256", strings.TrimPrefix(b.Digest, "sha256:")))
		if err == nil && strings.Contains(string(data), "IMAGE_ARCH=") {
			found = append(found, string(data))
		}
	}
	if ns == "" {
		for _, f := range found {
			if strings.Contains(f, "amd64") {
				return f
			}
		}
	}
	return strings.Join(found, "\n")
}

// TestImages_ImportExportRoundTrip: import → export → import keeps digests.
func TestImages_ImportExportRoundTrip(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TestImages(t, "busybox", "layered", "multiarch")
	d := harness.StartDaemon(t, harness.DaemonOptions{})
	for _, n := range []string{"busybox", "layered", "multiarch"} {
		d.MustCLI(t, "image", "import", filepath.Join(dir, n))
	}
	first := listImages(t, d)
	if len(first) != 3 {
		t.Fatalf("imported %d images, want 3: %v", len(first), first)
	}
	archive := filepath.Join(t.TempDir(), "all.tar")
	d.MustCLI(t, "image", "export", archive, "busybox:latest", "layered:latest", "multiarch:latest")
	d.MustCLI(t, "namespace", "create", "again")
	d.MustCLI(t, "-n", "again", "image", "import", archive)
	second := listImages(t, d, "-n", "again")
	for name, img := range first {
		if second[name].Digest != img.Digest {
			t.Errorf("%s: digest after round trip %s, want %s", name, second[name].Digest, img.Digest)
		}
	}
	// The layered image unpacked through berth is the tree its README describes.
	view := filepath.Join(t.TempDir(), "view")
	os.MkdirAll(view, 0o755)
	d.MustCLI(t, "snapshot", "view", "check", first["layered:latest"].Unpacked["overlayfs"])
	mount := d.MustCLI(t, "snapshot", "mounts", view, "check")
	if out, err := exec.Command("sh", "-c", mount).CombinedOutput(); err != nil {
		t.Fatalf("mount %q: %v %s", mount, err, out)
	}
	defer exec.Command("umount", view).Run()
	for _, msg := range testimage.CheckLayered(view) {
		t.Error(msg)
	}
}

// TestImages_BadInput: each mistake gets a clear error, and berthd serves on.
func TestImages_BadInput(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{})
	notJSON := filepath.Join(t.TempDir(), "layout")
	os.MkdirAll(notJSON, 0o755)
	os.WriteFile(filepath.Join(notJSON, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	os.WriteFile(filepath.Join(notJSON, "index.json"), []byte(`{not json`), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"image", "pull", "127.0.0.1:1/UPPER/case::bad"}, "image reference"},
		{[]string{"-n", "nowhere", "image", "ls"}, `namespace "nowhere"`},
		// A pull creates its namespace (as containerd's does), so what is
		// wrong here is only the registry that does not answer.
		{[]string{"-n", "nowhere", "image", "pull", "127.0.0.1:1/a:b"}, "registry 127.0.0.1:1"},
		{[]string{"image", "import", notJSON}, "index.json"},
		{[]string{"image", "inspect", "missing"}, "not found"},
		{[]string{"namespace", "create", "Not_A_Label"}, "DNS-1123"},
	}
	for _, tt := range tests {
		r := d.CLI(tt.args...)
		if r.ExitCode == 0 || !strings.Contains(r.Stderr, tt.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want an error mentioning %q", tt.args, r.ExitCode, r.Stderr, tt.want)
		}
	}
	d.MustCLI(t, "version")
}

// TestImages_RemoveCollectsBlobsAndChains: removing the last image that
// needs blobs and a chain collects them; a shared layer stays.
func TestImages_RemoveCollectsBlobsAndChains(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TestImages(t, "busybox", "layered")
	d := harness.StartDaemon(t, harness.DaemonOptions{})
	d.MustCLI(t, "image", "import", filepath.Join(dir, "busybox"))
	d.MustCLI(t, "image", "import", filepath.Join(dir, "layered"))
	before := strings.Count(d.MustCLI(t, "snapshot", "ls"), "Committed")
	if before != 4 {
		t.Fatalf("committed snapshots: got %d, want 4 (busybox layer shared)", before)
	}
	d.MustCLI(t, "image", "rm", "--sync", "layered:latest")
	if got := strings.Count(d.MustCLI(t, "snapshot", "ls"), "Committed"); got != 1 {
		t.Errorf("after removing layered: %d committed snapshots, want 1 (busybox's)", got)
	}
	blobs := d.MustCLI(t, "content", "ls", "-o", "json")
	var list []any
	json.Unmarshal([]byte(blobs), &list)
	if len(list) != 3 {
		t.Errorf("blobs after removal: %d, want 3 (busybox manifest, config, layer)", len(list))
	}
	d.MustCLI(t, "image", "rm", "--sync", "busybox:latest")
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		out := d.MustCLI(t, "content", "ls", "-o", "json")
		return strings.TrimSpace(out) == "[]", out
	})
}

func execShell(cmd string) ([]byte, error) { return exec.Command("sh", "-c", cmd).CombinedOutput() }
