package remote

import (
	"context"
	"strings"
	"testing"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPush(t *testing.T) {
	ctx := context.Background()
	src := newRegistry(t)
	src.push(t, "busybox", "library/busybox")
	src.push(t, "multiarch", "multi")
	dst := newRegistry(t)
	s := newStore(t)
	root, err := Pull(ctx, s, src.host+"/library/busybox:latest", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("push then pull gives the same digest, bit for bit", func(t *testing.T) {
		got, err := Push(ctx, s, root, dst.host+"/copy/busybox:v1", PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		back := newStore(t)
		pulled, err := Pull(ctx, back, dst.host+"/copy/busybox:v1", PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != root.Digest || pulled.Digest != root.Digest {
			t.Fatalf("pushed %s, pulled back %s, want %s", got.Digest, pulled.Digest, root.Digest)
		}
		m := manifestOf(t, back, pulled, content.HostPlatform())
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			if err := back.Verify(ctx, d.Digest); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("a cross-repository mount is used where allowed", func(t *testing.T) {
		hows := map[string]int{}
		_, err := Push(ctx, s, root, dst.host+"/other/busybox:v1", PushOptions{MountFrom: []string{"copy/busybox"},
			Progress: func(_ ocispec.Descriptor, how string) { hows[how]++ }})
		if err != nil {
			t.Fatal(err)
		}
		if hows["pushed"] != 0 || hows["mounted"]+hows["exists"] == 0 {
			t.Errorf("blobs %v: want none uploaded again", hows)
		}
	})

	t.Run("missing blobs are a clear error", func(t *testing.T) {
		ms := newStore(t)
		mroot, err := Pull(ctx, ms, src.host+"/multi:latest", PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Push(ctx, ms, mroot, dst.host+"/multi:all", PushOptions{})
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "not in the content store") || !strings.Contains(err.Error(), "--platform") {
			t.Fatalf("got %v, want not found naming the missing blobs", err)
		}
		p := content.HostPlatform()
		top, err := Push(ctx, ms, mroot, dst.host+"/multi:host", PushOptions{Platform: &p})
		if err != nil {
			t.Fatal(err)
		}
		back, err := Pull(ctx, newStore(t), dst.host+"/multi:host", PullOptions{})
		if err != nil || back.Digest != top.Digest || !content.IsManifest(back.MediaType) {
			t.Fatalf("pulled back %v %v, want the platform's manifest %s", back, err, top.Digest)
		}
	})
}
