package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/shim/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// env is what every shim test shares: a built berth-shim, the busybox
// rootfs (read-only, shared by all containers) and a runc root.
type env struct {
	shim, rootfs, runcRoot string
}

// cgroupParent holds this test process's containers. Cgroups are
// host-wide: a fixed name put two test runs' containers of the same id
// (other checkouts testing at once) in one cgroup, where TestShim_PauseResume
// froze the other's too and the memory tests read both.
var cgroupParent = fmt.Sprintf("berth-shim-test-%d", os.Getpid())

var (
	envOnce sync.Once
	shared  env
	envErr  error
	envDir  string
)

func TestMain(m *testing.M) {
	if b := os.Getenv(starterEnv); b != "" {
		os.Exit(runStarter(b))
	}
	code := m.Run()
	if envDir != "" {
		os.RemoveAll(envDir)
	}
	// The containers' cgroups went with runc delete; their parent stays.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent)
	for _, d := range dirs {
		_ = os.Remove(d)
	}
	os.Exit(code)
}

// setup checks prerequisites and prepares the shared env once.
func setup(t *testing.T) env {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	images := testutil.TestImages(t, "busybox")
	envOnce.Do(func() {
		envDir, envErr = os.MkdirTemp("", "berth-shim-test")
		if envErr != nil {
			return
		}
		shared.shim = filepath.Join(envDir, "berth-shim")
		if b := os.Getenv("BERTH_BIN"); b != "" && fileExists(filepath.Join(b, "berth-shim")) && os.Getenv("BERTH_SHIM_REBUILD") == "" {
			shared.shim = filepath.Join(b, "berth-shim")
		} else {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", shared.shim, "berth.dev/berth/cmd/berth-shim")
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				envErr = fmt.Errorf("build berth-shim: %v: %s", err, out)
				return
			}
			// Flush the new binary: the shim drops its clean code pages
			// once it serves, and dirty ones cannot be dropped, which
			// would skew TestShim_Memory.
			envErr = syncFile(shared.shim)
		}
		shared.rootfs = filepath.Join(envDir, "rootfs")
		shared.runcRoot = filepath.Join(envDir, "runc")
		envErr = testutil.ExtractSingleLayer(filepath.Join(images, "busybox"), shared.rootfs)
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
	return shared
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

type specOpt func(*specs.Spec)

// hostPID runs the container in the host's pid namespace, so its process
// is not a pid 1 that ignores signals it has no handler for.
func hostPID(s *specs.Spec) {
	var ns []specs.LinuxNamespace
	for _, n := range s.Linux.Namespaces {
		if n.Type != specs.PIDNamespace {
			ns = append(ns, n)
		}
	}
	s.Linux.Namespaces = ns
}

func memoryLimit(n int64) specOpt {
	return func(s *specs.Spec) { s.Linux.Resources.Memory.Limit = &n }
}

// bundle writes a bundle for a busybox container running args and
// registers cleanup of the container and its shim.
func (e env) bundle(t *testing.T, id string, args []string, opts ...specOpt) string {
	t.Helper()
	dir := t.TempDir()
	mem, pids := int64(64<<20), int64(100)
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: e.rootfs, Readonly: true},
		Hostname: id,
		Process: &specs.Process{
			Args: args, Cwd: "/", Env: []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "TERM=xterm"},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=16m"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/" + cgroupParent + "/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources: &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: &mem},
				Pids:   &specs.LinuxPids{Limit: &pids},
			},
		},
	}
	for _, o := range opts {
		o(s)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.cleanup(id, dir) })
	return dir
}

// cleanup removes what a test may have left: the container (runc delete
// --force) and the shim, killed by the pid it wrote.
func (e env) cleanup(id, bundle string) {
	_ = exec.Command("runc", "--root", e.runcRoot, "delete", "--force", id).Run()
	if b, err := os.ReadFile(filepath.Join(bundle, "shim.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			if p, err := os.FindProcess(pid); err == nil && isShim(pid) {
				_ = p.Kill()
			}
		}
	}
}

func isShim(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return bytes.Contains(b, []byte("berth-shim"))
}

// start starts a shim for bundle and creates the container in it.
func (e env) start(t *testing.T, id, bundle string, create *shimapi.CreateRequest) *client.Client {
	t.Helper()
	ctx := context.Background()
	c, err := client.Start(ctx, client.Opts{ShimBinary: e.shim, Namespace: "test", ID: id, Bundle: bundle})
	if err != nil {
		t.Fatalf("start shim: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if create == nil {
		create = &shimapi.CreateRequest{}
	}
	create.Id, create.Bundle, create.RuntimeRoot = id, bundle, e.runcRoot
	if _, err := c.Create(ctx, create); err != nil {
		t.Fatalf("create %s: %v\nshim.log: %s", id, err, readFile(filepath.Join(bundle, "shim.log")))
	}
	return c
}

// run starts the created container and returns the Wait result.
func run(t *testing.T, c *client.Client, id string) *shimapi.WaitResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	w, err := c.Wait(ctx, &shimapi.WaitRequest{Id: id})
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return w
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fifo makes a FIFO and opens its read end in the background (the open
// blocks until the shim opens the write end); read returns all it got
// until the shim closed it.
func fifo(t *testing.T, name string) (path string, read func() string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), name)
	if err := syscallMkfifo(path); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			done <- err.Error()
			return
		}
		defer f.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(f)
		done <- buf.String()
	}()
	return path, func() string {
		select {
		case s := <-done:
			return s
		case <-time.After(10 * time.Second):
			t.Fatalf("fifo %s: no EOF", name)
			return ""
		}
	}
}
