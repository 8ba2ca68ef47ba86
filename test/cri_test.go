package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
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
	// berthd readies the sandbox image at its start (here the built-in
	// pause, pinned): the pulled image is the only other one.
	list.Images = slices.DeleteFunc(list.Images, func(im *runtime.Image) bool { return im.Pinned })
	if len(list.Images) != 1 || list.Images[0].Id != pulled.ImageRef {
		t.Fatalf("list: got %v, want one image %s besides the pinned pause", list.Images, pulled.ImageRef)
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

// pullBusybox pushes busybox to a local registry and pulls it through the
// CRI; it returns the image ID.
func pullBusybox(t *testing.T, c criClient, ctx context.Context) string {
	t.Helper()
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox")
	r, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: refs["busybox"]}})
	if err != nil {
		t.Fatal(err)
	}
	return r.ImageRef
}

func podConfig(t *testing.T, name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: t.TempDir(),
		DnsConfig:    &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}},
		Labels:       map[string]string{"app": name},
		Linux:        &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}},
	}
}

// TestCRI_PodLifecycle runs a pod with no sandbox image on the node (the
// built-in pause), a busybox container in it writing to the kubelet's log
// path in the CRI format, stops and removes both, and checks that stops
// and removes of unknown IDs succeed.
func TestCRI_PodLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n"})
	c := dialCRI(t, d)
	ctx := criCtx(t)
	img := pullBusybox(t, c, ctx)

	pcfg := podConfig(t, "web-"+strings.ToLower(t.Name()[8:12]))
	rp, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: rp.PodSandboxId, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Status.State != runtime.PodSandboxState_SANDBOX_READY || ps.Status.Network.GetIp() == "" {
		t.Fatalf("sandbox status: got %v, want ready with an IP", ps.Status)
	}
	if ps.Status.Metadata.Name != pcfg.Metadata.Name {
		t.Errorf("sandbox metadata: got %v", ps.Status.Metadata)
	}
	pl, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": pcfg.Metadata.Name}}})
	if err != nil || len(pl.Items) != 1 || pl.Items[0].Id != rp.PodSandboxId {
		t.Fatalf("list pod sandboxes by label: %v %v", pl, err)
	}
	imgs, _ := c.ListImages(ctx, &runtime.ListImagesRequest{})
	pinned := false
	for _, im := range imgs.Images {
		pinned = pinned || im.Pinned && slices.Contains(im.RepoTags, "berth.local/pause:builtin")
	}
	if !pinned {
		t.Errorf("the built-in pause image is not listed as pinned: %v", imgs.Images)
	}

	ccfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "sh"},
		Image:    &runtime.ImageSpec{Image: img},
		Command:  []string{"sh", "-c", "echo hello; cat /etc/hostname; grep -c 10.96.0.10 /etc/resolv.conf; while true; do echo tick; sleep 0.2; done"},
		LogPath:  "sh/0.log",
		Labels:   map[string]string{"c": "sh"},
	}
	cc, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: rp.PodSandboxId, Config: ccfg, SandboxConfig: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cc.ContainerId})
	if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_CREATED {
		t.Fatalf("status after create: %v %v", st, err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}
	logPath := pcfg.LogDirectory + "/sh/0.log"
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(logPath)
		s := string(b)
		return strings.Contains(s, " stdout F hello\n") && strings.Contains(s, " stdout F "+pcfg.Hostname+"\n") && strings.Contains(s, " stdout F 1\n"), s
	})
	st, err = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cc.ContainerId})
	if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_RUNNING || st.Status.LogPath != logPath || st.Status.StartedAt == 0 {
		t.Fatalf("status after start: %v %v", st, err)
	}
	cl, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: rp.PodSandboxId}})
	if err != nil || len(cl.Containers) != 1 || cl.Containers[0].State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("list containers: %v %v", cl, err)
	}
	if out := d.MustCLI(t, "-n", "k8s.io", "task", "ls"); !strings.Contains(out, cc.ContainerId) {
		t.Errorf("berth -n k8s.io task ls lacks %s:\n%s", cc.ContainerId, out)
	}

	ex, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cc.ContainerId, Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Timeout: 10})
	if err != nil {
		t.Fatal(err)
	}
	if string(ex.Stdout) != "out\n" || string(ex.Stderr) != "err\n" || ex.ExitCode != 3 {
		t.Errorf("exec sync: got stdout %q stderr %q exit %d", ex.Stdout, ex.Stderr, ex.ExitCode)
	}
	start := time.Now()
	if _, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cc.ContainerId, Cmd: []string{"sleep", "30"}, Timeout: 1}); err == nil {
		t.Errorf("exec sync past its timeout: want an error")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("exec sync with a 1 s timeout took %v", el)
	}

	cs, err := c.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: cc.ContainerId})
	if err != nil || cs.Stats.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || cs.Stats.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("container stats: %v %v", cs, err)
	}
	// The writable layer grows by what the container writes.
	before := cs.GetStats().GetWritableLayer().GetUsedBytes().GetValue()
	if _, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cc.ContainerId, Cmd: []string{"sh", "-c", "head -c 1048576 /dev/zero > /big"}, Timeout: 10}); err != nil {
		t.Fatal(err)
	}
	cs, err = c.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: cc.ContainerId})
	if wl := cs.GetStats().GetWritableLayer(); err != nil || wl.GetUsedBytes().GetValue() < before+1<<20 || wl.GetInodesUsed().GetValue() == 0 {
		t.Errorf("writable layer after writing 1 MiB: %v (before %d bytes) %v", wl, before, err)
	}
	ls, err := c.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
	if err != nil || len(ls.Stats) != 1 {
		t.Errorf("list container stats: %v %v", ls, err)
	}
	// The pod's metrics under cAdvisor's names, from the container's cgroup
	// and the pod's network.
	descs, err := c.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{})
	if err != nil || len(descs.Descriptors) == 0 {
		t.Fatalf("metric descriptors: %v %v", descs, err)
	}
	pm, err := c.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, p := range pm.GetPodMetrics() {
		for _, cm := range p.GetContainerMetrics() {
			for _, m := range cm.GetMetrics() {
				if p.PodSandboxId == rp.PodSandboxId && cm.ContainerId == cc.ContainerId && len(m.LabelValues) > 0 {
					got[m.Name] += m.GetValue().GetValue()
				}
			}
		}
	}
	for _, name := range []string{"container_memory_usage_bytes", "container_processes", "container_threads", "container_file_descriptors", "container_start_time_seconds"} {
		if got[name] == 0 {
			t.Errorf("pod metric %s: %d, want > 0 (all: %v)", name, got[name], got)
		}
	}
	if _, ok := got["container_network_receive_bytes_total"]; !ok {
		t.Errorf("no network metric of the pod's eth0: %v", got)
	}
	if _, err := c.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: cc.ContainerId,
		Linux: &runtime.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuPeriod: 100000, CpuQuota: 50000}}); err != nil {
		t.Fatal(err)
	}
	read := 0
	for _, f := range []string{"/sys/fs/cgroup/memory/berth/k8s.io/" + cc.ContainerId + "/memory.limit_in_bytes", "/sys/fs/cgroup/berth/k8s.io/" + cc.ContainerId + "/memory.max"} {
		if b, err := os.ReadFile(f); err == nil {
			read++
			if strings.TrimSpace(string(b)) != "100663296" {
				t.Errorf("%s after update: got %s, want 100663296", f, b)
			}
		}
	}
	if read == 0 {
		t.Errorf("no memory limit file of the container's cgroup found")
	}

	// The kubelet's rotation: rename, reopen, and the new file fills.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), " stdout F tick\n"), string(b)
	})

	start = time.Now()
	if _, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: cc.ContainerId, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("stop with a 1 s timeout took %v", el)
	}
	st, err = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cc.ContainerId})
	if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_EXITED || st.Status.ExitCode == 0 || st.Status.FinishedAt == 0 {
		t.Fatalf("status after stop: %v %v", st, err)
	}
	for _, call := range []func() error{
		func() error {
			_, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "0123456789abcdef"})
			return err
		},
		func() error {
			_, err := c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: "0123456789abcdef"})
			return err
		},
		func() error {
			_, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: "0123456789abcdef"})
			return err
		},
		func() error {
			_, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: "0123456789abcdef"})
			return err
		},
	} {
		if err := call(); err != nil {
			t.Errorf("stop/remove of an unknown ID: %v", err)
		}
	}
	if _, err := c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: rp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	ps, err = c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: rp.PodSandboxId})
	if err != nil || ps.Status.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("sandbox after stop: %v %v", ps, err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: rp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: rp.PodSandboxId}); err == nil {
		t.Errorf("status of a removed sandbox: want NotFound")
	}
	if out := d.MustCLI(t, "-n", "k8s.io", "container", "ls"); strings.Contains(out, rp.PodSandboxId) {
		t.Errorf("sandbox container left after remove:\n%s", out)
	}
}

// TestCRI_Kill9 kills berthd with SIGKILL while a pod runs: after the
// restart the kubelet sees the same pod and container IDs, states and IP,
// and the container still answers an exec.
func TestCRI_Kill9(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n", AllowUncleanStop: true})
	c := dialCRI(t, d)
	ctx := criCtx(t)
	img := pullBusybox(t, c, ctx)
	pcfg := podConfig(t, "crash-pod")
	rp, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: rp.PodSandboxId, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "sleeper"}, Image: &runtime.ImageSpec{Image: img},
		Command: []string{"sleep", "1000"}, LogPath: "sleeper.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}
	before, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: rp.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}

	d.Kill9()
	d.Restart()
	c = dialCRI(t, d)

	pl, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil || len(pl.Items) != 1 || pl.Items[0].Id != rp.PodSandboxId || pl.Items[0].State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods after kill -9: %v %v", pl, err)
	}
	after, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: rp.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	if after.Status.Network.GetIp() != before.Status.Network.GetIp() || after.Status.CreatedAt != before.Status.CreatedAt {
		t.Errorf("pod after kill -9: ip %s created %d, before %s %d", after.Status.Network.GetIp(), after.Status.CreatedAt,
			before.Status.Network.GetIp(), before.Status.CreatedAt)
	}
	cl, err := c.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil || len(cl.Containers) != 1 || cl.Containers[0].Id != cc.ContainerId || cl.Containers[0].State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("containers after kill -9: %v %v", cl, err)
	}
	ex, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cc.ContainerId, Cmd: []string{"echo", "alive"}, Timeout: 10})
	if err != nil || string(ex.Stdout) != "alive\n" {
		t.Errorf("exec after kill -9: %v %v", ex, err)
	}
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: rp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: rp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if cl, _ := c.ListContainers(ctx, &runtime.ListContainersRequest{}); len(cl.Containers) != 0 {
		t.Errorf("containers left after the pod's removal: %v", cl.Containers)
	}
}

// spdyConnect upgrades a streaming URL the CRI handed out to SPDY, as
// the kubelet's and crictl's clients do.
func spdyConnect(t *testing.T, rawURL, protocol string) httpstream.Connection {
	t.Helper()
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatalf("upgrade %s: %v", rawURL, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func createStream(t *testing.T, conn httpstream.Connection, kv ...string) httpstream.Stream {
	t.Helper()
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	s, err := conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCRI_Streaming: Exec through the streaming server (SPDY, the
// v4.channel.k8s.io protocol) returns the output and the exit code, and
// PortForward reaches a server listening on the pod's loopback only.
func TestCRI_Streaming(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n"})
	c := dialCRI(t, d)
	ctx := criCtx(t)
	img := pullBusybox(t, c, ctx)
	pcfg := podConfig(t, "stream-pod")
	rp, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: rp.PodSandboxId})
		_, _ = c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: rp.PodSandboxId})
	})
	cc, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: rp.PodSandboxId, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "web"}, Image: &runtime.ImageSpec{Image: img},
		Command: []string{"sh", "-c", "mkdir -p /tmp/www && echo served > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}

	er, err := c.Exec(ctx, &runtime.ExecRequest{ContainerId: cc.ContainerId, Cmd: []string{"sh", "-c", "echo hi; echo oops >&2; exit 3"}, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(er.Url); !strings.HasPrefix(u.Host, "127.0.0.1:") {
		t.Errorf("streaming URL %s is not on loopback", er.Url)
	}
	conn := spdyConnect(t, er.Url, "v4.channel.k8s.io")
	errStream := createStream(t, conn, "streamType", "error")
	stdout := createStream(t, conn, "streamType", "stdout")
	stderr := createStream(t, conn, "streamType", "stderr")
	out, _ := io.ReadAll(stdout)
	serr, _ := io.ReadAll(stderr)
	status, _ := io.ReadAll(errStream)
	if string(out) != "hi\n" || string(serr) != "oops\n" {
		t.Errorf("exec output: stdout %q stderr %q", out, serr)
	}
	if !strings.Contains(string(status), "NonZeroExitCode") || !strings.Contains(string(status), `"message":"3"`) {
		t.Errorf("exec status: got %s, want exit code 3", status)
	}
	// The session is in the API metrics; the command's own exit 3 is no
	// failure of it.
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		v, _ := metric(scrape(t, d), "berth_api_requests_total", "service", "runtime.v1.Streaming", "method", "Exec", "code", "OK")
		return v == 1, fmt.Sprintf("berth_api_requests_total{runtime.v1.Streaming Exec OK} = %v, want 1", v)
	})

	var body string
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		pr, err := c.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: rp.PodSandboxId, Port: []int32{8080}})
		if err != nil {
			return false, err.Error()
		}
		pc := spdyConnect(t, pr.Url, "portforward.k8s.io")
		createStream(t, pc, "streamType", "error", "port", "8080", "requestID", "0")
		data := createStream(t, pc, "streamType", "data", "port", "8080", "requestID", "0")
		if _, err := io.WriteString(data, "GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(data)
		body = string(b)
		return strings.Contains(body, "served"), body
	})
}
