package harness

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"berth.dev/berth/internal/testutil"
)

// registries are the two registry kinds every registry test runs against.
var registries = []struct {
	name  string
	start func(testing.TB) *Registry
}{
	{"docker-registry", StartRegistry},
	{"in-process", StartInProcessRegistry},
}

// pullBack fetches ref and checks, as go-containerregistry's validate does,
// that every manifest, config and layer hashes to its descriptor; it
// returns the digest the registry serves.
func pullBack(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	desc, err := remote.Get(r, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("get %s: %v", ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Index(idx); err != nil {
			t.Errorf("validate index %s: %v", ref, err)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("validate image %s: %v", ref, err)
		}
	}
	return desc.Digest.String()
}

func TestPushTestImages_PullBack(t *testing.T) {
	dir := testutil.TestImages(t, DefaultTestImages...)
	for _, rc := range registries {
		t.Run(rc.name, func(t *testing.T) {
			reg := rc.start(t)
			refs := PushTestImages(t, reg.Addr)
			if len(refs) != len(DefaultTestImages) {
				t.Fatalf("got %d refs, want %d: %v", len(refs), len(DefaultTestImages), refs)
			}
			for _, n := range DefaultTestImages {
				if want := reg.Addr + "/library/" + n + ":latest"; refs[n] != want {
					t.Errorf("ref of %s: got %q, want %q", n, refs[n], want)
				}
				got := pullBack(t, refs[n])
				if want := LayoutDigest(t, filepath.Join(dir, n), ""); got != want {
					t.Errorf("%s: registry serves %s, layout has %s", n, got, want)
				}
			}
		})
	}
}

func TestPushLayout_MultiarchIsIndex(t *testing.T) {
	dir := testutil.TestImages(t, "multiarch")
	reg := StartInProcessRegistry(t)
	d := PushLayout(t, reg.Addr, filepath.Join(dir, "multiarch"), "x/multi:v1")
	r, _ := name.ParseReference(reg.Addr+"/x/multi:v1", name.Insecure)
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(im.Manifests); got != 2 {
		t.Errorf("got %d manifests in the index, want 2 (amd64, arm64)", got)
	}
	// A platform-specific pull resolves through the index.
	img, err := remote.Image(r, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" {
		t.Errorf("got architecture %q, want arm64", cf.Architecture)
	}
	if got := pullBack(t, reg.Addr+"/x/multi@"+d); got != d {
		t.Errorf("pull by digest: got %s, want %s", got, d)
	}
}

// TestLayoutManifest covers the choice of manifest in a layout holding
// several, which the shared test images do not.
func TestLayoutManifest(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, tag := range []string{"a", "b"} {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{ociRefName: tag})); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		want[tag] = d.String()
	}
	for _, tc := range []struct {
		tag, want string
		wantErr   bool
	}{
		{tag: "a", want: want["a"]},
		{tag: "b", want: want["b"]},
		{tag: "c", wantErr: true},
		{tag: "", wantErr: true},
	} {
		_, desc, err := layoutManifest(dir, tc.tag)
		if tc.wantErr {
			if err == nil {
				t.Errorf("tag %q: got %s, want an error", tc.tag, desc.Digest)
			}
			continue
		}
		if err != nil || desc.Digest.String() != tc.want {
			t.Errorf("tag %q: got %s, %v; want %s", tc.tag, desc.Digest, err, tc.want)
		}
	}
	reg := StartInProcessRegistry(t)
	if got := PushLayout(t, reg.Addr, dir, "two/tags:b"); got != want["b"] {
		t.Errorf("PushLayout of tag b: got %s, want %s", got, want["b"])
	}
	if _, err := pushLayout(reg.Addr, filepath.Join(dir, "missing"), "x:y"); err == nil {
		t.Error("pushing a missing layout: got no error")
	}
}

func TestRegistry_StopKillRestart(t *testing.T) {
	dir := testutil.TestImages(t, "busybox")
	for _, rc := range registries {
		t.Run(rc.name, func(t *testing.T) {
			reg := rc.start(t)
			d := PushLayout(t, reg.Addr, filepath.Join(dir, "busybox"), "library/busybox:latest")
			ref := reg.Ref("library/busybox:latest")
			for _, step := range []struct {
				name string
				down func()
			}{
				{"stop", reg.Stop},
				{"kill", reg.Kill},
			} {
				step.down()
				if up(reg.Addr) {
					t.Fatalf("after %s: registry still answers", step.name)
				}
				step.down() // a second stop or kill does nothing
				reg.Restart()
				if got := pullBack(t, ref); got != d {
					t.Errorf("after %s and restart: got %s, want %s", step.name, got, d)
				}
			}
			reg.Restart() // restarting a running registry works too
			if !up(reg.Addr) {
				t.Error("registry down after restarting it while running")
			}
		})
	}
}

func up(addr string) bool {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/v2/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
