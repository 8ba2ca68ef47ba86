package oci

import (
	"fmt"
	"math"
	"os"
	"path"
	"strings"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// Settings is what a berth Container says about the process it runs, on top
// of the image's config. The zero value of every field but ID means "the
// image's value" or "the default".
type Settings struct {
	// ID is the container's id, as runc knows it. Required.
	ID string
	// Namespace is the berth namespace, used for the default cgroups path.
	// Default "default".
	Namespace string
	// Hostname defaults to ID truncated to 63 characters, or, with
	// NetworkHost, to the host's own hostname.
	Hostname string

	// Args overrides the image's Cmd.
	Args []string
	// Entrypoint, when non-nil (even empty), overrides the image's
	// Entrypoint and drops the image's Cmd.
	Entrypoint []string
	// Env is a list of KEY=VALUE that overrides the image's Env by key.
	Env []string
	// WorkingDir overrides the image's WorkingDir.
	WorkingDir string
	// User overrides the image's User: "uid[:gid]" or "name[:group]".
	User string

	// Mounts are added after the standard mounts; one whose target equals
	// a standard mount's replaces it.
	Mounts []Mount
	// Resources limits cpu, memory and pids.
	Resources Resources

	// NetworkHost shares the host's network namespace and bind-mounts the
	// host's /etc/hosts and /etc/resolv.conf read-only.
	NetworkHost bool
	// NetNSPath, when set, is a network namespace the container joins
	// instead of getting a new empty one (a bind-mounted netns file that
	// the network package attached to a CNI network). Ignored with
	// NetworkHost.
	NetNSPath string
	// NamespacePaths join existing namespaces instead of new ones, by
	// type ("ipc", "uts", "pid"): a pod's containers join its sandbox's.
	// HostNamespace stays in berthd's own (a pod's hostPID, hostIPC).
	NamespacePaths map[string]string `json:",omitempty"`
	// OOMScoreAdj, when set, is the process's oom_score_adj. A value below
	// berthd's own fails in runc where root lacks CAP_SYS_RESOURCE, so
	// callers clamp it (the CRI does).
	OOMScoreAdj *int `json:",omitempty"`
	// ReadonlyRootfs mounts the rootfs read-only.
	ReadonlyRootfs bool
	// Terminal gives the process a pseudo-terminal.
	Terminal bool
	// Annotations are copied into the spec.
	Annotations map[string]string
	// CgroupsPath defaults to DefaultCgroupsPath(Namespace, ID).
	CgroupsPath string

	// Init runs InitPath (berth-init, a host binary bind-mounted read-only
	// at InitTarget) as PID 1 with the program as its child, so signals
	// reach a program that ignores them as PID 1 and orphans are reaped.
	Init     bool
	InitPath string
	// StopSignal is what a stop sends first (a name, SIGTERM or TERM, or
	// a number); empty: the image's STOPSIGNAL, else SIGTERM. Generate
	// records the result in the StopSignalAnnotation.
	StopSignal string

	// Privileged gives the process every capability berthd has, no
	// seccomp filter, no masked or read-only kernel paths, a writable
	// /sys and every device in the device cgroup (the CRI's privileged
	// containers; the node policy sees the capabilities as added).
	Privileged bool
	// Security changes the defaults as a Kubernetes security context
	// does (nil: the defaults).
	Security *Security `json:",omitempty"`
	// NoNewPrivileges defaults to true when nil.
	NoNewPrivileges *bool
}

// HostNamespace as a NamespacePaths value keeps the host's namespace.
const HostNamespace = "host"

// InitTarget is where Init mounts berth-init in the container.
const InitTarget = "/.berth-init"

// StopSignalAnnotation records the signal a stop sends first, resolved at
// Generate from the settings and the image, so whoever stops the task
// later reads it off the spec.
const StopSignalAnnotation = "berth.dev/stop-signal"

// Mount types.
const (
	MountBind  = "bind"
	MountTmpfs = "tmpfs"
)

// Mount is a bind mount of a host path or a tmpfs.
type Mount struct {
	// Type is MountBind or MountTmpfs.
	Type string
	// Source is the host path for a bind mount; ignored for tmpfs.
	Source string
	// Target is the absolute path inside the container.
	Target string
	// ReadOnly mounts it read-only.
	ReadOnly bool
	// SizeBytes bounds a tmpfs; 0 is the kernel's default (half of RAM).
	SizeBytes int64
	// Mode is a tmpfs's root directory mode; 0 means 01777.
	Mode os.FileMode
	// Propagation of a bind mount: "" or "rprivate" (the default),
	// "rslave" (host mounts appear inside) or "rshared" (both ways); the
	// rootfs then propagates as much.
	Propagation string `json:",omitempty"`
	// RecursiveReadOnly makes a read-only bind's submounts read-only too
	// (the runtime's "rro"; private propagation only).
	RecursiveReadOnly bool `json:",omitempty"`
}

// Resources are the cgroup limits of a container; zero means unlimited.
type Resources struct {
	// CPU is in cores (0.5 = half a core), applied as a CFS quota.
	CPU float64
	// MemoryBytes is the memory limit; swap is limited to the same total,
	// so the container gets no swap.
	MemoryBytes int64
	// Pids is the most tasks the container may have.
	Pids int64
}

const (
	// cfsPeriod is the CFS period in µs, Docker's and the kernel's default.
	cfsPeriod = 100000
	// minQuota is the kernel's smallest CFS quota (1 ms).
	minQuota = 1000
	// minMemory keeps a limit large enough for runc's init to start.
	minMemory = 1 << 20
	// maxHostname is the longest hostname berth sets (a DNS label).
	maxHostname = 63
)

// DefaultCgroupsPath is the cgroupfs path of a container:
// "/berth/<namespace>/<id>", relative to each controller's hierarchy.
func DefaultCgroupsPath(namespace, id string) string {
	if namespace == "" {
		namespace = spec.DefaultNamespace
	}
	return "/berth/" + namespace + "/" + id
}

func (s *Settings) validate() error {
	if err := checkName("id", s.ID, 256); err != nil {
		return err
	}
	if s.Namespace != "" {
		if err := checkName("namespace", s.Namespace, 256); err != nil {
			return err
		}
	}
	if err := s.Security.validate(); err != nil {
		return err
	}
	if s.Hostname != "" {
		if err := checkHostname(s.Hostname); err != nil {
			return err
		}
	}
	if s.NetNSPath != "" && (!path.IsAbs(s.NetNSPath) || strings.ContainsRune(s.NetNSPath, 0)) {
		return fmt.Errorf("netns path %q: want an absolute path: %w", s.NetNSPath, errdefs.ErrInvalidArgument)
	}
	for typ, p := range s.NamespacePaths {
		switch typ {
		case "ipc", "uts", "pid":
		default:
			return fmt.Errorf("namespace %q: want ipc, uts or pid: %w", typ, errdefs.ErrInvalidArgument)
		}
		if p == HostNamespace {
			continue
		}
		if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
			return fmt.Errorf("%s namespace path %q: want an absolute path: %w", typ, p, errdefs.ErrInvalidArgument)
		}
	}
	if s.OOMScoreAdj != nil && (*s.OOMScoreAdj < -1000 || *s.OOMScoreAdj > 1000) {
		return fmt.Errorf("oom_score_adj %d: want -1000..1000: %w", *s.OOMScoreAdj, errdefs.ErrInvalidArgument)
	}
	if s.CgroupsPath != "" {
		p := s.CgroupsPath
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.ContainsAny(p, ":\x00") {
			return fmt.Errorf("cgroups path %q: want a clean absolute cgroupfs path: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	for i, m := range s.Mounts {
		if err := m.validate(); err != nil {
			return fmt.Errorf("mounts[%d]: %w", i, err)
		}
	}
	return s.Resources.validate()
}

// checkName accepts the characters of ids and namespaces: letters, digits,
// '-', '_' and '.', never "." or "..", so they are safe in a cgroup path.
func checkName(what, v string, max int) error {
	if v == "" || len(v) > max || v == "." || v == ".." {
		return fmt.Errorf("%s %q: want 1..%d characters: %w", what, v, max, errdefs.ErrInvalidArgument)
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%s %q: character %q not allowed: %w", what, v, c, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func checkHostname(h string) error {
	if len(h) > maxHostname {
		return fmt.Errorf("hostname %q: longer than %d: %w", h, maxHostname, errdefs.ErrInvalidArgument)
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("hostname %q: character %q not allowed: %w", h, c, errdefs.ErrInvalidArgument)
		}
	}
	if h[0] == '-' || h[0] == '.' {
		return fmt.Errorf("hostname %q: must start with a letter or digit: %w", h, errdefs.ErrInvalidArgument)
	}
	return nil
}

// defaultHostname is the container id cut to a hostname's length, with
// the characters a hostname cannot hold replaced.
func defaultHostname(id string) string {
	if len(id) > maxHostname {
		id = id[:maxHostname]
	}
	return strings.Map(func(c rune) rune {
		if c == '_' {
			return '-'
		}
		return c
	}, id)
}

func (m Mount) validate() error {
	if err := checkContainerPath("target", m.Target); err != nil {
		return err
	}
	if m.Target == "/" {
		return fmt.Errorf("target /: cannot mount over the rootfs: %w", errdefs.ErrInvalidArgument)
	}
	switch m.Type {
	case MountBind:
		if !path.IsAbs(m.Source) || strings.ContainsRune(m.Source, 0) {
			return fmt.Errorf("bind source %q: want an absolute host path: %w", m.Source, errdefs.ErrInvalidArgument)
		}
		if m.SizeBytes != 0 || m.Mode != 0 {
			return fmt.Errorf("bind %s: size and mode are tmpfs options: %w", m.Target, errdefs.ErrInvalidArgument)
		}
		switch m.Propagation {
		case "", "rprivate", "rslave", "rshared":
		default:
			return fmt.Errorf("bind %s: propagation %q: want rprivate, rslave or rshared: %w", m.Target, m.Propagation, errdefs.ErrInvalidArgument)
		}
		if m.RecursiveReadOnly && (!m.ReadOnly || (m.Propagation != "" && m.Propagation != "rprivate")) {
			return fmt.Errorf("bind %s: recursive read-only wants a read-only mount with private propagation: %w", m.Target, errdefs.ErrInvalidArgument)
		}
	case MountTmpfs:
		if m.SizeBytes < 0 {
			return fmt.Errorf("tmpfs %s: negative size: %w", m.Target, errdefs.ErrInvalidArgument)
		}
		if m.Mode&^(os.ModePerm|os.ModeSticky|os.ModeSetuid|os.ModeSetgid) != 0 {
			return fmt.Errorf("tmpfs %s: mode %v: want permission bits only: %w", m.Target, m.Mode, errdefs.ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("mount type %q: want %s or %s: %w", m.Type, MountBind, MountTmpfs, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkContainerPath accepts a clean absolute path outside /proc. Mounting
// over /proc is how CVE-2019-19921 escaped, and a working directory there
// hands the process a host handle (CVE-2024-21626).
func checkContainerPath(what, p string) error {
	if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%s %q: want an absolute path: %w", what, p, errdefs.ErrInvalidArgument)
	}
	for _, e := range strings.Split(p, "/") {
		if e == "." || e == ".." {
			return fmt.Errorf("%s %q: must not contain . or ..: %w", what, p, errdefs.ErrInvalidArgument)
		}
	}
	if c := path.Clean(p); c == "/proc" || strings.HasPrefix(c, "/proc/") {
		return fmt.Errorf("%s %q: must not be under /proc: %w", what, p, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (r Resources) validate() error {
	if math.IsNaN(r.CPU) || math.IsInf(r.CPU, 0) || r.CPU < 0 || r.CPU > 1<<20 {
		return fmt.Errorf("cpu %v: want 0 or a positive number of cores: %w", r.CPU, errdefs.ErrInvalidArgument)
	}
	if r.CPU > 0 && r.CPU*cfsPeriod < minQuota {
		return fmt.Errorf("cpu %v: below the kernel's smallest quota (0.01 cores): %w", r.CPU, errdefs.ErrInvalidArgument)
	}
	if r.MemoryBytes < 0 || (r.MemoryBytes > 0 && r.MemoryBytes < minMemory) {
		return fmt.Errorf("memory %d: want 0 or at least %d bytes: %w", r.MemoryBytes, minMemory, errdefs.ErrInvalidArgument)
	}
	if r.Pids < 0 {
		return fmt.Errorf("pids %d: want 0 or more: %w", r.Pids, errdefs.ErrInvalidArgument)
	}
	return nil
}
