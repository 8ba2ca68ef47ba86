package test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criClient is a kubelet's view of one berthd: the generated CRI clients
// over its CRI socket.
type criClient struct {
	runtime.RuntimeServiceClient
	runtime.ImageServiceClient
}

// dialCRI connects to d's CRI socket; calls wait for it to be served.
func dialCRI(t *testing.T, d *harness.Daemon) criClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.CRISocket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return criClient{runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)}
}

func criCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestCRI_VersionStatusImages drives the image service as a kubelet does:
// version and status, pull busybox from a local registry, find it by tag,
// by ID and by digest, see it in `berth -n k8s.io image ls`, remove it.
func TestCRI_VersionStatusImages(t *testing.T) {
	testutil.RequireRoot(t)
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox")
	d := harness.StartDaemon(t, harness.DaemonOptions{})
	c := dialCRI(t, d)
	ctx := criCtx(t)

	v, err := c.Version(ctx, &runtime.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" {
		t.Errorf("version: got %v", v)
	}
	st, err := os.Stat(d.CRISocket)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o600 {
		t.Errorf("cri socket mode: got %o, want 600", m)
	}
	status, err := c.Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]bool{}
	for _, cd := range status.Status.Conditions {
		conds[cd.Type] = cd.Status
	}
	if !conds[runtime.RuntimeReady] {
		t.Errorf("status: RuntimeReady false: %v", status)
	}
	if status.Info["config"] == "" {
		t.Errorf("verbose status has no config: %v", status.Info)
	}
	rc, err := c.RuntimeConfig(ctx, &runtime.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Linux.CgroupDriver != runtime.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver: got %v, want cgroupfs", rc.Linux.CgroupDriver)
	}

	ref := refs["busybox"]
	pulled, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref},
		Auth: &runtime.AuthConfig{Username: "nobody", Password: "unused", ServerAddress: "other.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pulled.ImageRef, "sha256:") {
		t.Fatalf("pull answered image ref %q, want an image ID", pulled.ImageRef)
	}
	list, err := c.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Images) != 1 || list.Images[0].Id != pulled.ImageRef {
		t.Fatalf("list: got %v, want one image %s", list.Images, pulled.ImageRef)
	}
	img := list.Images[0]
	if !slices.Contains(img.RepoTags, ref) {
		t.Errorf("repo tags %v lack %s", img.RepoTags, ref)
	}
	if len(img.RepoDigests) != 1 || !strings.HasPrefix(img.RepoDigests[0], reg.Addr+"/library/busybox@sha256:") {
		t.Errorf("repo digests: got %v", img.RepoDigests)
	}
	if img.Size == 0 {
		t.Errorf("image size 0")
	}
	for _, by := range []string{ref, pulled.ImageRef, strings.TrimPrefix(pulled.ImageRef, "sha256:")[:12], img.RepoDigests[0]} {
		s, err := c.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: by}, Verbose: true})
		if err != nil {
			t.Fatalf("image status %s: %v", by, err)
		}
		if s.Image == nil || s.Image.Id != pulled.ImageRef {
			t.Errorf("image status %s: got %v, want %s", by, s.Image, pulled.ImageRef)
		}
		if !strings.Contains(s.Info["info"], `"imageSpec"`) {
			t.Errorf("image status %s: verbose info %q", by, s.Info)
		}
	}
	fs, err := c.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.GetValue() == 0 || fs.ImageFilesystems[0].InodesUsed.GetValue() == 0 {
		t.Errorf("image fs info: got %v", fs.ImageFilesystems)
	}
	if out := d.MustCLI(t, "-n", "k8s.io", "image", "ls"); !strings.Contains(out, ref) {
		t.Errorf("berth -n k8s.io image ls does not show %s:\n%s", ref, out)
	}

	if _, err := c.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: pulled.ImageRef}}); err != nil {
		t.Fatal(err)
	}
	s, err := c.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Image != nil {
		t.Errorf("image status after remove: got %v, want none", s.Image)
	}
	// Removing what is gone is no error (the kubelet's GC races itself).
	if _, err := c.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Errorf("remove of a removed image: %v", err)
	}
}

// TestCRI_Off: --cri-address "" serves no CRI socket.
func TestCRI_Off(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Args: []string{"--cri-address", ""}})
	d.MustCLI(t, "version")
	if _, err := os.Stat(d.CRISocket); !os.IsNotExist(err) {
		t.Errorf("cri socket %s with --cri-address \"\": %v", d.CRISocket, err)
	}
}
