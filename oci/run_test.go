package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testutil"
)

// These tests run real containers with runc from the shared busybox test
// image, to check that what Generate writes is a spec runc accepts and that
// it means what it says.

const runNamespace = "oci-test"

var runSeq atomic.Int64

// busybox extracts the busybox test image's one layer into a fresh rootfs
// and returns it with the image's config.
func busybox(t *testing.T) (string, ocispec.ImageConfig) {
	t.Helper()
	layout := filepath.Join(testutil.TestImages(t, "busybox"), "busybox")
	blob := func(d string) string {
		return filepath.Join(layout, "blobs", strings.Replace(d, ":", "/", 1))
	}
	readJSON := func(p string, v any) {
		t.Helper()
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	var index ocispec.Index
	readJSON(filepath.Join(layout, "index.json"), &index)
	var manifest ocispec.Manifest
	readJSON(blob(index.Manifests[0].Digest.String()), &manifest)
	var img ocispec.Image
	readJSON(blob(manifest.Config.Digest.String()), &img)

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-xzf", blob(manifest.Layers[0].Digest.String()), "-C", rootfs).CombinedOutput()
	if err != nil {
		t.Fatalf("extract busybox layer: %v: %s", err, out)
	}
	return rootfs, img.Config
}

type runResult struct {
	stdout, stderr string
	err            error
}

// startContainer generates and writes the bundle of a container and starts
// `runc run` on it in the foreground; the caller waits on the command.
func startContainer(t *testing.T, s Settings, stdin io.Reader) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	testutil.RequireRoot(t)
	runc := testutil.RequireBinary(t, "runc")
	rootfs, img := busybox(t)
	s.ID = fmt.Sprintf("berth-oci-%d-%d", os.Getpid(), runSeq.Add(1))
	s.Namespace = runNamespace
	spec, err := Generate(context.Background(), rootfs, img, s)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := WriteBundle(bundle, spec); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, runc, "--root", state, "run", "--bundle", bundle, s.ID)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		// Only the container this test made, by id, in its own state dir.
		exec.Command(runc, "--root", state, "delete", "--force", s.ID).Run()
		// runc removes the container's cgroups but not their parents; remove
		// this test's namespace level where it is empty (rmdir fails if not).
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", DefaultCgroupsPath(runNamespace, "")))
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	return cmd, &stdout, &stderr
}

func runContainer(t *testing.T, s Settings) runResult {
	t.Helper()
	cmd, stdout, stderr := startContainer(t, s, nil)
	err := cmd.Wait()
	return runResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

func TestRun_Busybox(t *testing.T) {
	script := []string{"sh", "-c", `id -u; id -G; pwd; hostname; echo "$GREETING"`}
	for _, tc := range []struct {
		name string
		s    Settings
		want string
	}{
		{name: "root", s: Settings{Args: script, Env: []string{"GREETING=hello"}},
			want: "0\n0\n/\n%ID%\nhello\n"},
		{name: "nobody in tmp", s: Settings{Args: script, Env: []string{"GREETING=hi"}, User: "nobody", WorkingDir: "/tmp", Hostname: "box"},
			want: "65534\n65534\n/tmp\nbox\nhi\n"},
		{name: "numeric user without passwd entry", s: Settings{Entrypoint: []string{"/bin/sh"}, Args: script[1:], User: "4242:4243", Hostname: "box"},
			want: "4242\n4243\n/\nbox\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, stdout, stderr := startContainer(t, tc.s, nil)
			id := cmd.Args[len(cmd.Args)-1]
			if err := cmd.Wait(); err != nil {
				t.Fatalf("runc run: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
			}
			want := strings.ReplaceAll(tc.want, "%ID%", id)
			if got := stdout.String(); got != want {
				t.Errorf("output %q, want %q (stderr %q)", got, want, stderr)
			}
		})
	}
}

func TestRun_ReadonlyRootfs(t *testing.T) {
	r := runContainer(t, Settings{
		ReadonlyRootfs: true,
		Mounts:         []Mount{{Type: MountTmpfs, Target: "/tmp", SizeBytes: 1 << 20}},
		Args:           []string{"sh", "-c", "echo x > /tmp/ok && cat /tmp/ok && touch /etc/nope"},
	})
	if r.err == nil {
		t.Fatalf("writing /etc in a read-only rootfs succeeded: %q", r.stdout)
	}
	if r.stdout != "x\n" {
		t.Errorf("stdout %q, want the tmpfs write to work", r.stdout)
	}
	if !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("stderr %q, want a read-only file system error", r.stderr)
	}
}

// The limits land in the container's cgroup, at the documented cgroupfs
// path, while it runs; runc removes the cgroup when it exits.
func TestRun_Resources(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	cmd, stdout, stderr := startContainer(t, Settings{
		Resources: Resources{CPU: 0.5, MemoryBytes: 64 << 20, Pids: 64},
		Args: []string{"sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes " +
			"/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max; read line || true"},
	}, stdinR)
	id := cmd.Args[len(cmd.Args)-1]
	cg := filepath.Join("/sys/fs/cgroup/memory", DefaultCgroupsPath(runNamespace, id))
	limit := filepath.Join(cg, "memory.limit_in_bytes")
	deadline := time.Now().Add(20 * time.Second)
	var got []byte
	for {
		var err error
		// runc makes the cgroup before it writes the limits: poll.
		if got, err = os.ReadFile(limit); err == nil && string(bytes.TrimSpace(got)) == "67108864" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s = %q, %v; want 67108864", limit, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stdinW.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("runc run: %v\nstderr: %s", err, stderr)
	}
	if want := "67108864\n67108864\n50000\n64\n"; stdout.String() != want {
		t.Errorf("container sees %q, want %q", stdout, want)
	}
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("cgroup %s still there after exit: %v", cg, err)
	}
}

func TestRun_HostNetwork(t *testing.T) {
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	hostName, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	r := runContainer(t, Settings{
		NetworkHost: true,
		Args:        []string{"sh", "-c", "readlink /proc/self/ns/net; hostname; cat /etc/resolv.conf; echo >> /etc/hosts"},
	})
	want := hostNet + "\n" + hostName + "\n" + string(resolv)
	if r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if r.err == nil || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("writing the host's /etc/hosts: %v, stderr %q; want a read-only error", r.err, r.stderr)
	}
}

// The process runs with the default capabilities only, nothing inheritable
// or ambient, no_new_privs and a seccomp filter.
func TestRun_Hardening(t *testing.T) {
	r := runContainer(t, Settings{
		User: "nobody",
		Args: []string{"sh", "-c", "grep -E '^(CapInh|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; ulimit -Hn"},
	})
	if r.err != nil {
		t.Fatalf("runc run: %v\nstderr: %s", r.err, r.stderr)
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	want := "CapInh:\t0000000000000000\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n" +
		fmt.Sprintf("NoNewPrivs:\t1\nSeccomp:\t2\n%d\n", min(1024, rl.Max))
	if r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

// Under a hard RLIMIT_NOFILE below containerd's 1024 (some sandboxes, and
// a root without CAP_SYS_RESOURCE cannot raise it), containers still start,
// with the lower limit. The test binary runs TestRun_Hardening again in a
// child whose limit is lowered, leaving this process's limit alone.
func TestRun_LowHardLimit(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	testutil.TestImages(t, "busybox")
	cmd := exec.Command("sh", "-c", `ulimit -S -n 512 && ulimit -H -n 512 && exec "$0" -test.run='^TestRun_Hardening$' -test.count=1 -test.v`, os.Args[0])
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestRun_Hardening") {
		t.Fatalf("child under a hard limit of 512: %v\n%s", err, out)
	}
}
