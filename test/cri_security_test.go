package test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criPod runs a pod and removes it at the test's end.
func criPod(t *testing.T, c criClient, ctx context.Context, cfg *runtime.PodSandboxConfig) string {
	t.Helper()
	rp, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: rp.PodSandboxId})
		_, _ = c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: rp.PodSandboxId})
	})
	return rp.PodSandboxId
}

// criRun creates and starts a `sleep` container with the security context
// sc in the pod.
func criRun(t *testing.T, c criClient, ctx context.Context, pod string, pcfg *runtime.PodSandboxConfig, img, name string, sc *runtime.LinuxContainerSecurityContext) string {
	t.Helper()
	cc, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: img},
		Command: []string{"sleep", "1000"}, Linux: &runtime.LinuxContainerConfig{SecurityContext: sc}}})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return cc.ContainerId
}

// criExec runs sh -c script in the container: stdout+stderr and the exit code.
func criExec(t *testing.T, c criClient, ctx context.Context, id, script string) (string, int32) {
	t.Helper()
	r, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", script}, Timeout: 10})
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	return strings.TrimSpace(string(r.Stdout) + string(r.Stderr)), r.ExitCode
}

// statusField is a field of /proc/self/status in the container.
func statusField(t *testing.T, c criClient, ctx context.Context, id, field string) string {
	t.Helper()
	out, _ := criExec(t, c, ctx, id, "grep '^"+field+":' /proc/self/status | cut -f2")
	return out
}

// TestCRI_SecurityContext checks each part of a Kubernetes security
// context in a container, the way critest does: capabilities added,
// dropped and ALL dropped, seccomp (none for a nil profile, berth's
// default, a localhost profile that blocks chmod), masked and read-only
// paths, supplemental groups, run-as user and group (and a group alone
// refused), read-only rootfs, no-new-privileges, privileged, and a pod's
// sysctls.
func TestCRI_SecurityContext(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n"})
	c := dialCRI(t, d)
	ctx := criCtx(t)
	img := pullBusybox(t, c, ctx)
	pcfg := podConfig(t, "secctx-pod")
	pcfg.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "1024"}
	pod := criPod(t, c, ctx, pcfg)
	run := func(name string, sc *runtime.LinuxContainerSecurityContext) string {
		return criRun(t, c, ctx, pod, pcfg, img, name, sc)
	}

	plain := run("plain", nil)
	if out, code := criExec(t, c, ctx, plain, "brctl addbr secctx0"); code == 0 {
		t.Errorf("brctl addbr without NET_ADMIN worked: %s", out)
	}
	if got := statusField(t, c, ctx, plain, "Seccomp"); got != "0" {
		t.Errorf("nil seccomp profile: Seccomp %q, want 0 (unconfined, as the CRI says)", got)
	}
	if out, _ := criExec(t, c, ctx, plain, "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start"); out != "1\n1024" {
		t.Errorf("pod sysctls in the container: got %q, want 1 and 1024", out)
	}

	netAdmin := run("netadmin", &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}}})
	if out, code := criExec(t, c, ctx, netAdmin, "brctl addbr secctx0 && brctl delbr secctx0"); code != 0 {
		t.Errorf("brctl addbr with NET_ADMIN added: exit %d: %s", code, out)
	}
	noRaw := run("noraw", &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{DropCapabilities: []string{"NET_RAW"}}})
	if out, code := criExec(t, c, ctx, noRaw, "ping -c 1 -W 1 127.0.0.1"); code == 0 || !strings.Contains(strings.ToLower(out), "permission denied") {
		t.Errorf("ping with NET_RAW dropped: exit %d: %s", code, out)
	}
	none := run("nocaps", &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{DropCapabilities: []string{"ALL"}}})
	if got := statusField(t, c, ctx, none, "CapBnd"); got != "0000000000000000" {
		t.Errorf("ALL dropped: CapBnd %s", got)
	}

	def := run("seccomp-default", &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}})
	if got := statusField(t, c, ctx, def, "Seccomp"); got != "2" {
		t.Errorf("RuntimeDefault: Seccomp %q, want 2 (filtered)", got)
	}
	profile := filepath.Join(t.TempDir(), "block-chmod.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat","fchmodat2"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	local := run("seccomp-local", &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: profile}})
	if out, code := criExec(t, c, ctx, local, "chmod 400 /tmp"); code == 0 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("chmod under a localhost profile blocking it: exit %d: %s", code, out)
	}

	paths := run("paths", &runtime.LinuxContainerSecurityContext{MaskedPaths: []string{"/etc/group"}, ReadonlyPaths: []string{"/tmp"}})
	if out, code := criExec(t, c, ctx, paths, "wc -c < /etc/group"); code != 0 || out != "0" {
		t.Errorf("masked /etc/group: exit %d, %q bytes, want 0", code, out)
	}
	if out, code := criExec(t, c, ctx, paths, "touch /tmp/x"); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("touch in read-only /tmp: exit %d: %s", code, out)
	}

	user := run("user", &runtime.LinuxContainerSecurityContext{RunAsUser: &runtime.Int64Value{Value: 1000}, RunAsGroup: &runtime.Int64Value{Value: 2000},
		SupplementalGroups: []int64{1234, 5678}, ReadonlyRootfs: true, NoNewPrivs: true})
	if out, _ := criExec(t, c, ctx, user, "id -u; id -g; id -G"); !strings.HasPrefix(out, "1000\n2000\n") || !strings.Contains(out, "1234") || !strings.Contains(out, "5678") {
		t.Errorf("run as 1000:2000 with groups 1234 5678: got %q", out)
	}
	if out, code := criExec(t, c, ctx, user, "touch /x"); code == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("touch on a read-only rootfs: exit %d: %s", code, out)
	}
	if got := statusField(t, c, ctx, user, "NoNewPrivs"); got != "1" {
		t.Errorf("no-new-privileges: NoNewPrivs %q", got)
	}
	if st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: user}); err != nil {
		t.Fatal(err)
	} else if u := st.Status.GetUser().GetLinux(); u.GetUid() != 1000 || u.GetGid() != 2000 || !slices.Contains(u.GetSupplementalGroups(), 1234) {
		t.Errorf("status user: got %v, want uid 1000 gid 2000 with group 1234", u)
	}
	_, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "group-only"}, Image: &runtime.ImageSpec{Image: img}, Command: []string{"true"},
		Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{RunAsGroup: &runtime.Int64Value{Value: 2000}}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("run-as group without a user: got %v, want InvalidArgument", err)
	}

	priv := run("privileged", &runtime.LinuxContainerSecurityContext{Privileged: true,
		Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: profile}})
	if out, code := criExec(t, c, ctx, priv, "brctl addbr secctx1 && brctl delbr secctx1 && chmod 700 /tmp && hostname privileged-ok"); code != 0 {
		t.Errorf("privileged (seccomp profile ignored): exit %d: %s", code, out)
	}
	if got := statusField(t, c, ctx, priv, "Seccomp"); got != "0" {
		t.Errorf("privileged: Seccomp %q, want 0", got)
	}
}

// TestCRI_HostNamespaces: a pod with the host's PID and IPC namespaces
// (hostPID, hostIPC) shares them with the node; a pod without has its own.
func TestCRI_HostNamespaces(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n"})
	c := dialCRI(t, d)
	ctx := criCtx(t)
	img := pullBusybox(t, c, ctx)
	hostNS := func(typ string) string {
		l, err := os.Readlink("/proc/self/ns/" + typ)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, tc := range []struct {
		name string
		mode runtime.NamespaceMode
		same bool
	}{{"own-ns-pod", runtime.NamespaceMode_POD, false}, {"host-ns-pod", runtime.NamespaceMode_NODE, true}} {
		pcfg := podConfig(t, tc.name)
		opts := &runtime.NamespaceOption{Pid: tc.mode, Ipc: tc.mode}
		pcfg.Linux.SecurityContext.NamespaceOptions = opts
		pod := criPod(t, c, ctx, pcfg)
		id := criRun(t, c, ctx, pod, pcfg, img, "ns", &runtime.LinuxContainerSecurityContext{NamespaceOptions: opts})
		for _, typ := range []string{"pid", "ipc"} {
			out, _ := criExec(t, c, ctx, id, "readlink /proc/self/ns/"+typ)
			if (out == hostNS(typ)) != tc.same {
				t.Errorf("%s: %s namespace %s, host's %s; want same=%v", tc.name, typ, out, hostNS(typ), tc.same)
			}
		}
		if tc.same {
			if out, code := criExec(t, c, ctx, id, fmt.Sprintf("test -d /proc/%d", os.Getpid())); code != 0 {
				t.Errorf("host PID namespace: the test's own process %d is not in the container's /proc: %s", os.Getpid(), out)
			}
		}
	}
}

// TestCRI_AttachStdin: a container made with stdin reads what an attach
// writes, and with stdin_once its stdin closes when the attach's ends.
func TestCRI_AttachStdin(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n"})
	c := dialCRI(t, d)
	ctx := criCtx(t)
	img := pullBusybox(t, c, ctx)
	pcfg := podConfig(t, "attach-pod")
	pod := criPod(t, c, ctx, pcfg)
	cc, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "sh"}, Image: &runtime.ImageSpec{Image: img},
		Command: []string{"sh"}, Stdin: true, StdinOnce: true, LogPath: "sh.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
		t.Fatal(err)
	}
	// A shell on an open stdin waits for input: it is still running.
	time.Sleep(300 * time.Millisecond)
	if st, _ := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cc.ContainerId}); st.GetStatus().GetState() != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("sh with stdin: state %v, want running", st.GetStatus().GetState())
	}
	ar, err := c.Attach(ctx, &runtime.AttachRequest{ContainerId: cc.ContainerId, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	conn := spdyConnect(t, ar.Url, "v4.channel.k8s.io")
	createStream(t, conn, "streamType", "error")
	stdin := createStream(t, conn, "streamType", "stdin")
	stdout := createStream(t, conn, "streamType", "stdout")
	createStream(t, conn, "streamType", "stderr")
	if _, err := io.WriteString(stdin, "echo attached-$((6*7))\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := stdout.Read(buf)
	if err != nil || string(buf[:n]) != "attached-42\n" {
		t.Errorf("attach stdout: %q %v, want attached-42", buf[:n], err)
	}
	// The end of the attach's input is the container's (stdin_once): sh exits.
	stdin.Close()
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cc.ContainerId})
		return err == nil && st.Status.State == runtime.ContainerState_CONTAINER_EXITED && st.Status.ExitCode == 0, fmt.Sprint(st, err)
	})
}

// TestCRI_MountPropagation: a host mount made under a HOST_TO_CONTAINER
// (rslave) volume after the container started appears inside it; under a
// private one it does not; a recursive read-only bind makes it read-only.
func TestCRI_MountPropagation(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: "cri:\n  sandboxImage: 127.0.0.1:1/none/pause:1\n"})
	c := dialCRI(t, d)
	ctx := criCtx(t)
	img := pullBusybox(t, c, ctx)
	// A shared mount point of its own, as the kubelet's volumes are.
	dir := t.TempDir()
	for _, args := range [][]string{{"--bind", dir, dir}, {"--make-rshared", dir}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-R", dir).Run() })
	pcfg := podConfig(t, "propagation-pod")
	pod := criPod(t, c, ctx, pcfg)
	run := func(name string, prop runtime.MountPropagation) string {
		cc, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: img}, Command: []string{"sleep", "1000"},
			Mounts: []*runtime.Mount{{HostPath: dir, ContainerPath: "/vol", Propagation: prop}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
			t.Fatal(err)
		}
		st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cc.ContainerId})
		if err != nil || len(st.Status.Mounts) != 1 || st.Status.Mounts[0].Propagation != prop {
			t.Errorf("%s: status mounts %v, want propagation %v (%v)", name, st.GetStatus().GetMounts(), prop, err)
		}
		return cc.ContainerId
	}
	slave := run("rslave", runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER)
	private := run("private", runtime.MountPropagation_PROPAGATION_PRIVATE)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "berth-prop", sub).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	if out, _ := criExec(t, c, ctx, slave, "grep -c ' /vol/sub tmpfs' /proc/mounts"); out != "1" {
		t.Errorf("rslave volume: the host's new mount is not inside (%q)", out)
	}
	if out, _ := criExec(t, c, ctx, private, "grep -c ' /vol/sub tmpfs' /proc/mounts"); out != "0" {
		t.Errorf("private volume: the host's new mount is inside (%q)", out)
	}

	// Recursive read-only (the runtime's rro, announced in Status): the
	// submount is read-only too; a plain read-only bind leaves it writable.
	st, err := c.Status(ctx, &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetRuntimeHandlers()[0].GetFeatures().GetRecursiveReadOnlyMounts() {
		t.Skip("the runtime here takes no rro mounts")
	}
	for _, rro := range []bool{false, true} {
		cc, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: fmt.Sprintf("ro-%v", rro)}, Image: &runtime.ImageSpec{Image: img}, Command: []string{"sleep", "1000"},
			Mounts: []*runtime.Mount{{HostPath: dir, ContainerPath: "/vol", Readonly: true, RecursiveReadOnly: rro}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cc.ContainerId}); err != nil {
			t.Fatal(err)
		}
		out, code := criExec(t, c, ctx, cc.ContainerId, "touch /vol/sub/f")
		if rro != (code != 0) {
			t.Errorf("read-only bind (recursive %v): touch in the submount: exit %d %s", rro, code, out)
		}
	}
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: pcfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "rro-rw"}, Image: &runtime.ImageSpec{Image: img}, Command: []string{"true"},
		Mounts: []*runtime.Mount{{HostPath: dir, ContainerPath: "/vol", RecursiveReadOnly: true}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("recursive read-only on a writable mount: got %v, want InvalidArgument", err)
	}
}
