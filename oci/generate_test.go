package oci

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var testImage = ocispec.ImageConfig{
	Cmd:     []string{"sh"},
	Env:     []string{"PATH=/bin"},
	Labels:  map[string]string{"io.containerd.runtime": "evil", "berth.dev/privileged": "true"},
	Volumes: map[string]struct{}{"/data": {}},
}

func generate(t *testing.T, s Settings) *specs.Spec {
	t.Helper()
	root := writeRootfs(t, map[string]string{"passwd": testPasswd, "group": testGroup})
	spec, err := Generate(context.Background(), root, testImage, s)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func hasNamespace(spec *specs.Spec, typ specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
}

func findMount(spec *specs.Spec, dest string) *specs.Mount {
	for i := range spec.Mounts {
		if spec.Mounts[i].Destination == dest {
			return &spec.Mounts[i]
		}
	}
	return nil
}

func TestGenerate_Defaults(t *testing.T) {
	spec := generate(t, Settings{ID: "web", Namespace: "prod"})
	// The version Debian stable's runc and crun both accept (see ociVersion).
	if spec.Version != "1.0.2" {
		t.Errorf("version %q, want %q", spec.Version, "1.0.2")
	}
	if spec.Hostname != "web" {
		t.Errorf("hostname %q, want web", spec.Hostname)
	}
	if spec.Linux.CgroupsPath != "/berth/prod/web" {
		t.Errorf("cgroups path %q, want /berth/prod/web", spec.Linux.CgroupsPath)
	}
	for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if !hasNamespace(spec, ns) {
			t.Errorf("no %s namespace", ns)
		}
	}
	if hasNamespace(spec, specs.UserNamespace) || hasNamespace(spec, specs.CgroupNamespace) {
		t.Errorf("unexpected namespaces %v", spec.Linux.Namespaces)
	}
	p := spec.Process
	if diff := cmp.Diff([]string{"sh"}, p.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if p.Cwd != "/" || !p.NoNewPrivileges || p.Terminal {
		t.Errorf("cwd %q, no_new_privs %v, terminal %v; want /, true, false", p.Cwd, p.NoNewPrivileges, p.Terminal)
	}
	c := p.Capabilities
	if diff := cmp.Diff(defaultCaps, c.Bounding); diff != "" {
		t.Errorf("bounding (-want +got):\n%s", diff)
	}
	if !slices.Equal(c.Bounding, c.Effective) || !slices.Equal(c.Bounding, c.Permitted) {
		t.Errorf("effective %v, permitted %v; want the bounding set", c.Effective, c.Permitted)
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("inheritable %v, ambient %v; want empty", c.Inheritable, c.Ambient)
	}
	for _, dest := range []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} {
		if findMount(spec, dest) == nil {
			t.Errorf("no %s mount", dest)
		}
	}
	for _, dest := range []string{"/sys", "/sys/fs/cgroup"} {
		if m := findMount(spec, dest); m != nil && !slices.Contains(m.Options, "ro") {
			t.Errorf("%s options %v, want ro", dest, m.Options)
		}
	}
	if findMount(spec, "/data") != nil {
		t.Error("image volume /data mounted; volumes are ignored")
	}
	if !slices.Contains(spec.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(spec.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("masked %v, readonly %v", spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths)
	}
	devs := spec.Linux.Resources.Devices
	if len(devs) == 0 || devs[0].Allow || devs[0].Access != "rwm" || devs[0].Major != nil {
		t.Fatalf("devices %+v: want deny-all first", devs)
	}
	if !slices.ContainsFunc(devs, func(d specs.LinuxDeviceCgroup) bool {
		return d.Allow && d.Type == "c" && d.Major != nil && *d.Major == 1 && d.Minor != nil && *d.Minor == 3
	}) {
		t.Errorf("devices %+v: /dev/null not allowed", devs)
	}
	if r := spec.Linux.Resources; r.CPU != nil || r.Memory != nil || r.Pids != nil {
		t.Errorf("resources %+v: want no limits", r)
	}
	if spec.Annotations != nil {
		t.Errorf("annotations %v: image labels must not become annotations", spec.Annotations)
	}
	if spec.Root.Readonly {
		t.Error("root read-only by default")
	}
}

func TestGenerate_Seccomp(t *testing.T) {
	spec := generate(t, Settings{ID: "c"})
	sc := spec.Linux.Seccomp
	if sc == nil {
		t.Fatal("no seccomp profile")
	}
	if sc.DefaultAction != specs.ActErrno {
		t.Errorf("default action %s, want %s", sc.DefaultAction, specs.ActErrno)
	}
	if len(sc.Syscalls) == 0 || len(sc.Architectures) == 0 {
		t.Errorf("profile has %d syscall rules, %d architectures", len(sc.Syscalls), len(sc.Architectures))
	}
	// Without CAP_SYS_ADMIN the profile must not allow mount(2).
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && slices.Contains(r.Names, "mount") {
			t.Errorf("mount allowed by %+v", r)
		}
	}
}

func TestGenerate_Rlimits(t *testing.T) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	spec := generate(t, Settings{ID: "c"})
	if len(spec.Process.Rlimits) != 1 {
		t.Fatalf("rlimits %+v", spec.Process.Rlimits)
	}
	rl := spec.Process.Rlimits[0]
	want := min(uint64(1024), cur.Max)
	if rl.Type != "RLIMIT_NOFILE" || rl.Hard != want || rl.Soft != want {
		t.Errorf("rlimit %+v, want RLIMIT_NOFILE %d:%d", rl, want, want)
	}
	if rl.Hard > cur.Max || rl.Soft > rl.Hard {
		t.Errorf("rlimit %+v exceeds our hard limit %d", rl, cur.Max)
	}
}

// The clamp is what makes a berth with a low hard limit able to start
// containers. It is tested on the pure rule: lowering this process's own
// hard limit could not be undone (raising it needs CAP_SYS_RESOURCE, which
// root lacks here) and would leak into every later test.
func TestNofile(t *testing.T) {
	for _, tc := range []struct{ max, want uint64 }{
		{max: unix.RLIM_INFINITY, want: 1024},
		{max: 1 << 20, want: 1024},
		{max: 1024, want: 1024},
		{max: 512, want: 512},
		{max: 0, want: 0},
	} {
		got := nofile(tc.max)
		if len(got) != 1 || got[0].Type != "RLIMIT_NOFILE" || got[0].Hard != tc.want || got[0].Soft != tc.want {
			t.Errorf("hard limit %d: got %+v, want RLIMIT_NOFILE %d:%d", tc.max, got, tc.want, tc.want)
		}
	}
}

func TestGenerate_HostNetwork(t *testing.T) {
	for _, tc := range []struct {
		name         string
		s            Settings
		wantHostname string
	}{
		{name: "host name kept", s: Settings{ID: "c", NetworkHost: true}, wantHostname: ""},
		{name: "hostname set", s: Settings{ID: "c", NetworkHost: true, Hostname: "edge-1"}, wantHostname: "edge-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := generate(t, tc.s)
			if hasNamespace(spec, specs.NetworkNamespace) {
				t.Error("network namespace with host networking")
			}
			if !hasNamespace(spec, specs.UTSNamespace) {
				t.Error("no uts namespace: the container could rename the host")
			}
			if spec.Hostname != tc.wantHostname {
				t.Errorf("hostname %q, want %q", spec.Hostname, tc.wantHostname)
			}
			for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
				m := findMount(spec, f)
				if m == nil {
					t.Fatalf("no bind of %s", f)
				}
				if m.Source != f || m.Type != "bind" || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rbind") {
					t.Errorf("%s mount %+v, want a read-only bind of the host's", f, m)
				}
			}
		})
	}
	spec := generate(t, Settings{ID: "c"})
	if findMount(spec, "/etc/hosts") != nil {
		t.Error("host /etc/hosts bound without host networking")
	}
}

// A container on a CNI network joins the namespace the network package
// attached instead of a new empty one.
func TestGenerate_NetNSPath(t *testing.T) {
	const p = "/run/berth/.network/netns/default.web"
	for _, tc := range []struct {
		name string
		s    Settings
		want string
	}{
		{name: "new namespace", s: Settings{ID: "c"}, want: ""},
		{name: "joined namespace", s: Settings{ID: "c", NetNSPath: p}, want: p},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := generate(t, tc.s)
			for _, ns := range spec.Linux.Namespaces {
				if ns.Type == specs.NetworkNamespace {
					if ns.Path != tc.want {
						t.Errorf("network namespace path %q, want %q", ns.Path, tc.want)
					}
					return
				}
			}
			t.Error("no network namespace")
		})
	}
}

func TestGenerate_Resources(t *testing.T) {
	spec := generate(t, Settings{ID: "c", Resources: Resources{CPU: 0.5, MemoryBytes: 64 << 20, Pids: 128}})
	r := spec.Linux.Resources
	if r.CPU == nil || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu %+v, want quota 50000 period 100000", r.CPU)
	}
	if r.Memory == nil || *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 64<<20 {
		t.Errorf("memory %+v, want limit and swap %d", r.Memory, 64<<20)
	}
	if r.Pids == nil || *r.Pids.Limit != 128 {
		t.Errorf("pids %+v, want 128", r.Pids)
	}
	spec = generate(t, Settings{ID: "c", Resources: Resources{CPU: 2.25}})
	if q := *spec.Linux.Resources.CPU.Quota; q != 225000 {
		t.Errorf("quota %d for 2.25 cores, want 225000", q)
	}
}

func TestGenerate_Mounts(t *testing.T) {
	spec := generate(t, Settings{ID: "c", Mounts: []Mount{
		{Type: MountBind, Source: "/srv/data", Target: "/data", ReadOnly: true},
		{Type: MountBind, Source: "/srv/logs", Target: "/logs/"},
		{Type: MountTmpfs, Target: "/tmp", SizeBytes: 1 << 20, Mode: 0o700},
		{Type: MountTmpfs, Target: "/dev/shm", SizeBytes: 128 << 20},
	}})
	for _, tc := range []struct {
		dest string
		want specs.Mount
	}{
		{"/data", specs.Mount{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rprivate", "ro"}}},
		{"/logs", specs.Mount{Destination: "/logs", Type: "bind", Source: "/srv/logs", Options: []string{"rbind", "rprivate", "rw"}}},
		{"/tmp", specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "rw", "mode=700", "size=1048576"}}},
		{"/dev/shm", specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "rw", "mode=1777", "size=134217728"}}},
	} {
		m := findMount(spec, tc.dest)
		if m == nil {
			t.Errorf("no %s mount", tc.dest)
			continue
		}
		if diff := cmp.Diff(tc.want, *m); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.dest, diff)
		}
	}
	n := 0
	for _, m := range spec.Mounts {
		if m.Destination == "/dev/shm" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d mounts on /dev/shm, want the user's one", n)
	}
}

func TestGenerate_Settings(t *testing.T) {
	f := false
	long := strings.Repeat("a", 64) + "_b"
	spec := generate(t, Settings{
		ID: long, User: "app", WorkingDir: "/srv", Env: []string{"A=1"}, Terminal: true,
		ReadonlyRootfs: true, NoNewPrivileges: &f, Annotations: map[string]string{"k": "v"},
		CgroupsPath: "/custom/c",
	})
	if spec.Hostname != strings.Repeat("a", 63) {
		t.Errorf("hostname %q, want the id cut to 63", spec.Hostname)
	}
	p := spec.Process
	if p.User.UID != 1000 || p.Cwd != "/srv" || !p.Terminal || p.NoNewPrivileges {
		t.Errorf("process %+v", p)
	}
	if diff := cmp.Diff([]string{"PATH=/bin", "A=1"}, p.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if !spec.Root.Readonly || spec.Linux.CgroupsPath != "/custom/c" || spec.Annotations["k"] != "v" {
		t.Errorf("root %+v, cgroups %q, annotations %v", spec.Root, spec.Linux.CgroupsPath, spec.Annotations)
	}
	if spec := generate(t, Settings{ID: "under_score"}); spec.Hostname != "under-score" {
		t.Errorf("hostname %q, want under-score", spec.Hostname)
	}
}

func TestGenerate_Invalid(t *testing.T) {
	root := writeRootfs(t, map[string]string{"passwd": testPasswd})
	for _, tc := range []struct {
		name    string
		rootfs  string
		img     ocispec.ImageConfig
		s       Settings
		wantErr error
	}{
		{name: "no id", s: Settings{}, wantErr: errdefs.ErrInvalidArgument},
		{name: "id with slash", s: Settings{ID: "a/b"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "id dotdot", s: Settings{ID: ".."}, wantErr: errdefs.ErrInvalidArgument},
		{name: "rro not read-only", s: Settings{ID: "c", Mounts: []Mount{{Type: MountBind, Source: "/srv", Target: "/d", RecursiveReadOnly: true}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "rro rslave", s: Settings{ID: "c", Mounts: []Mount{{Type: MountBind, Source: "/srv", Target: "/d", ReadOnly: true, RecursiveReadOnly: true, Propagation: "rslave"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "unknown capability", s: Settings{ID: "c", Security: &Security{CapAdd: []string{"NET_MAGIC"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "relative seccomp profile", s: Settings{ID: "c", Security: &Security{Seccomp: SeccompLocalhost, SeccompProfile: "p.json"}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "seccomp kind", s: Settings{ID: "c", Security: &Security{Seccomp: "strict"}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "relative masked path", s: Settings{ID: "c", Security: &Security{MaskedPaths: []string{"proc"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "sysctl name", s: Settings{ID: "c", Security: &Security{Sysctls: map[string]string{"net/ipv4": "1"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "bad hostname", s: Settings{ID: "c", Hostname: "a b"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "long hostname", s: Settings{ID: "c", Hostname: strings.Repeat("h", 64)}, wantErr: errdefs.ErrInvalidArgument},
		{name: "systemd cgroups path", s: Settings{ID: "c", CgroupsPath: "system.slice:berth:c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "relative cgroups path", s: Settings{ID: "c", CgroupsPath: "berth/c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "relative netns path", s: Settings{ID: "c", NetNSPath: "netns/c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "dotdot cgroups path", s: Settings{ID: "c", CgroupsPath: "/berth/../c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "negative cpu", s: Settings{ID: "c", Resources: Resources{CPU: -1}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "tiny cpu", s: Settings{ID: "c", Resources: Resources{CPU: 0.001}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "tiny memory", s: Settings{ID: "c", Resources: Resources{MemoryBytes: 4096}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "negative pids", s: Settings{ID: "c", Resources: Resources{Pids: -1}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mount type", s: Settings{ID: "c", Mounts: []Mount{{Type: "nfs", Target: "/x"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mount relative target", s: Settings{ID: "c", Mounts: []Mount{{Type: MountTmpfs, Target: "x"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mount on proc", s: Settings{ID: "c", Mounts: []Mount{{Type: MountTmpfs, Target: "/proc/sys"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "mount on root", s: Settings{ID: "c", Mounts: []Mount{{Type: MountTmpfs, Target: "/"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "bind relative source", s: Settings{ID: "c", Mounts: []Mount{{Type: MountBind, Source: "data", Target: "/d"}}}, wantErr: errdefs.ErrInvalidArgument},
		{name: "relative rootfs", rootfs: "rootfs", s: Settings{ID: "c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "missing user", s: Settings{ID: "c", User: "ghost"}, wantErr: errdefs.ErrNotFound},
		{name: "bad image workdir", img: ocispec.ImageConfig{Cmd: []string{"sh"}, WorkingDir: "/proc/1/cwd"}, s: Settings{ID: "c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "bad image user", img: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "4294967296"}, s: Settings{ID: "c"}, wantErr: errdefs.ErrInvalidArgument},
		{name: "no command", img: ocispec.ImageConfig{}, s: Settings{ID: "c"}, wantErr: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := tc.rootfs
			if rootfs == "" {
				rootfs = root
			}
			img := tc.img
			if img.Cmd == nil && tc.name != "no command" {
				img.Cmd = []string{"sh"}
			}
			spec, err := Generate(context.Background(), rootfs, img, tc.s)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, %v; want %v", spec, err, tc.wantErr)
			}
		})
	}
	if _, err := Generate(context.Background(), "/nonexistent-rootfs", testImage, Settings{ID: "c"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing rootfs: got %v, want not exist", err)
	}
}

// The spec survives a JSON round trip unchanged, as the shim will read it.
func TestGenerate_JSON(t *testing.T) {
	spec := generate(t, Settings{ID: "c", Resources: Resources{CPU: 1, MemoryBytes: 1 << 30, Pids: 10}})
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(spec, &back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, key := range []string{`"inheritable"`, `"ambient"`} {
		if strings.Contains(string(data), key) {
			t.Errorf("spec JSON has %s", key)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	root := b.TempDir()
	os.MkdirAll(root+"/etc", 0o755)
	os.WriteFile(root+"/etc/passwd", []byte(testPasswd), 0o644)
	os.WriteFile(root+"/etc/group", []byte(testGroup), 0o644)
	s := Settings{ID: "c", User: "app", Resources: Resources{CPU: 1, MemoryBytes: 1 << 30}}
	for b.Loop() {
		if _, err := Generate(context.Background(), root, testImage, s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGenerate_Init(t *testing.T) {
	initBin := filepath.Join(t.TempDir(), "berth-init")
	if err := os.WriteFile(initBin, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := generate(t, Settings{ID: "c", Init: true, InitPath: initBin, Args: []string{"httpd", "-f"}})
	if want := []string{InitTarget, "--", "httpd", "-f"}; !slices.Equal(spec.Process.Args, want) {
		t.Errorf("args %q, want %q", spec.Process.Args, want)
	}
	m := findMount(spec, InitTarget)
	if m == nil || m.Source != initBin || !slices.Contains(m.Options, "ro") {
		t.Fatalf("init mount %+v, want %s read-only at %s", m, initBin, InitTarget)
	}
	if spec := generate(t, Settings{ID: "c", Args: []string{"httpd"}}); findMount(spec, InitTarget) != nil || spec.Process.Args[0] != "httpd" {
		t.Errorf("without Init: args %q, init mounted %v", spec.Process.Args, findMount(spec, InitTarget) != nil)
	}
	root := writeRootfs(t, map[string]string{"passwd": testPasswd, "group": testGroup})
	for _, p := range []string{"", "/nonexistent/berth-init"} {
		_, err := Generate(context.Background(), root, testImage, Settings{ID: "c", Init: true, InitPath: p})
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("InitPath %q: %v, want FailedPrecondition", p, err)
		}
	}
}

func TestGenerate_StopSignal(t *testing.T) {
	root := writeRootfs(t, map[string]string{"passwd": testPasswd, "group": testGroup})
	for _, tc := range []struct {
		name, image, setting, want, wantErr string
	}{
		{name: "default", want: ""},
		{name: "image STOPSIGNAL", image: "SIGQUIT", want: "SIGQUIT"},
		{name: "setting wins over the image", image: "SIGQUIT", setting: "USR1", want: "SIGUSR1"},
		{name: "number", setting: "2", want: "SIGINT"},
		{name: "explicit SIGTERM records nothing", setting: "TERM", want: ""},
		{name: "bad setting", setting: "SIGNOPE", wantErr: "stop signal: \"SIGNOPE\" is not a signal"},
		{name: "bad image", image: "99", wantErr: "image STOPSIGNAL: \"99\" is not a signal number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage
			img.StopSignal = tc.image
			spec, err := Generate(context.Background(), root, img, Settings{ID: "c", StopSignal: tc.setting})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := spec.Annotations[StopSignalAnnotation]; got != tc.want {
				t.Errorf("annotation %q, want %q", got, tc.want)
			}
		})
	}
}
