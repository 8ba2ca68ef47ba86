package oci

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ociVersion is the spec version written into config.json: the newest the
// runtimes of Debian stable accept (runc 1.1 says 1.0.2-dev; crun 1.8
// refuses 1.3.0 with "unknown version specified"), and no field berth sets
// is newer than it.
const ociVersion = "1.0.2"

// Generate builds the runtime spec of a container whose unpacked rootfs is
// at rootfs (an absolute host path), from the image's config and the
// container's settings. It reads the rootfs's /etc/passwd and /etc/group
// (safely, see the package doc) and, with NetworkHost, checks that the
// host's /etc/hosts and /etc/resolv.conf exist; it writes nothing.
//
// Invalid settings or an image config berth refuses (a bad USER or WORKDIR,
// no command) are errdefs.ErrInvalidArgument; a user or group name missing
// from the image is errdefs.ErrNotFound.
func Generate(ctx context.Context, rootfs string, img ocispec.ImageConfig, s Settings) (*specs.Spec, error) {
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	if !filepath.IsAbs(rootfs) {
		return nil, fmt.Errorf("rootfs %q: want an absolute path: %w", rootfs, errdefs.ErrInvalidArgument)
	}
	if st, err := os.Stat(rootfs); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("rootfs %s: not a directory: %w", rootfs, errdefs.ErrInvalidArgument)
	}

	proc, err := process(ctx, rootfs, img, s)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	mounts, err := mounts(s)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	cgroupsPath := s.CgroupsPath
	if cgroupsPath == "" {
		cgroupsPath = DefaultCgroupsPath(s.Namespace, s.ID)
	}
	spec := &specs.Spec{
		Version:  ociVersion,
		Process:  proc,
		Root:     &specs.Root{Path: filepath.Clean(rootfs), Readonly: s.ReadonlyRootfs},
		Hostname: hostname(s),
		Mounts:   mounts,
		Linux: &specs.Linux{
			Namespaces:    namespaces(s),
			Resources:     resources(s.Resources),
			CgroupsPath:   cgroupsPath,
			MaskedPaths:   append([]string(nil), maskedPaths...),
			ReadonlyPaths: append([]string(nil), readonlyPaths...),
		},
	}
	if len(s.Annotations) > 0 {
		spec.Annotations = maps.Clone(s.Annotations)
	}
	stop, err := stopSignal(img, s)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	if stop != "SIGTERM" {
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[StopSignalAnnotation] = stop
	}
	// A mount that propagates needs a rootfs that does (runc makes the
	// rootfs rprivate otherwise, which cuts the mount's propagation).
	for _, m := range s.Mounts {
		switch {
		case m.Propagation == "rshared":
			spec.Linux.RootfsPropagation = "rshared"
		case m.Propagation == "rslave" && spec.Linux.RootfsPropagation == "":
			spec.Linux.RootfsPropagation = "rslave"
		}
	}
	applySecurity(spec, s)
	// The profile allows syscalls by the capabilities in the bounding set,
	// so it is computed last.
	sc, err := seccompProfile(spec, s)
	if err != nil {
		return nil, fmt.Errorf("container %s: seccomp profile: %w", s.ID, err)
	}
	spec.Linux.Seccomp = sc
	return spec, nil
}

func process(ctx context.Context, rootfs string, img ocispec.ImageConfig, s Settings) (*specs.Process, error) {
	args, err := processArgs(img, s)
	if err != nil {
		return nil, err
	}
	env, err := processEnv(img, s)
	if err != nil {
		return nil, err
	}
	cwd, err := processCwd(img, s)
	if err != nil {
		return nil, err
	}
	userSpec := img.User
	if s.User != "" {
		userSpec = s.User
	}
	user, err := resolveUser(ctx, rootfs, userSpec)
	if err != nil {
		return nil, err
	}
	rl, err := rlimits()
	if err != nil {
		return nil, err
	}
	return &specs.Process{
		Terminal:        s.Terminal,
		User:            user,
		Args:            args,
		Env:             env,
		Cwd:             cwd,
		Capabilities:    capabilities(),
		Rlimits:         rl,
		NoNewPrivileges: s.NoNewPrivileges == nil || *s.NoNewPrivileges,
		OOMScoreAdj:     s.OOMScoreAdj,
	}, nil
}

// hostname is the settings' hostname, else the id cut to 63 characters,
// except with host networking, where the host's name stays (the UTS
// namespace is still the container's own, a copy of the host's, so nothing
// the container does renames the host).
func hostname(s Settings) string {
	if s.Hostname != "" {
		return s.Hostname
	}
	if s.NetworkHost {
		return ""
	}
	return defaultHostname(s.ID)
}

func namespaces(s Settings) []specs.LinuxNamespace {
	var ns []specs.LinuxNamespace
	for _, t := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if p := s.NamespacePaths[string(t)]; p != HostNamespace {
			ns = append(ns, specs.LinuxNamespace{Type: t, Path: p})
		}
	}
	ns = append(ns, specs.LinuxNamespace{Type: specs.MountNamespace})
	if !s.NetworkHost {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNSPath})
	}
	return ns
}

// mounts are the standard mounts, the host's name service files with host
// networking, then the settings' mounts; a later mount on the same target
// replaces an earlier one instead of stacking on it.
func mounts(s Settings) ([]specs.Mount, error) {
	all := standardMounts()
	if s.NetworkHost {
		for _, f := range hostNetworkFiles {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("host network: host %s: %w", f, err)
			}
			all = append(all, specs.Mount{Destination: f, Type: "bind", Source: f,
				Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	for _, m := range s.Mounts {
		all = append(all, specMount(m))
	}
	if s.Init {
		if s.InitPath == "" {
			return nil, fmt.Errorf("init: no berth-init binary configured (runtime.init in berthd's config): %w", errdefs.ErrFailedPrecondition)
		}
		if st, err := os.Stat(s.InitPath); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("init: berth-init at %s: not a regular file: %w", s.InitPath, errdefs.ErrFailedPrecondition)
		}
		all = append(all, specs.Mount{Destination: InitTarget, Type: "bind", Source: s.InitPath,
			Options: []string{"bind", "rprivate", "ro", "nosuid", "nodev"}})
	}
	out := make([]specs.Mount, 0, len(all))
	last := map[string]int{}
	for i, m := range all {
		last[filepath.Clean(m.Destination)] = i
	}
	for i, m := range all {
		if last[filepath.Clean(m.Destination)] == i {
			out = append(out, m)
		}
	}
	return out, nil
}

func specMount(m Mount) specs.Mount {
	rw := "rw"
	if m.ReadOnly {
		rw = "ro"
	}
	if m.Type == MountBind {
		prop := m.Propagation
		if prop == "" {
			prop = "rprivate"
		}
		opts := []string{"rbind", prop, rw}
		if m.RecursiveReadOnly {
			opts = append(opts, "rro")
		}
		return specs.Mount{Destination: filepath.Clean(m.Target), Type: "bind", Source: m.Source, Options: opts}
	}
	mode := m.Mode
	if mode == 0 {
		mode = os.ModePerm | os.ModeSticky
	}
	bits := uint32(mode.Perm())
	if mode&os.ModeSticky != 0 {
		bits |= 0o1000
	}
	if mode&os.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if mode&os.ModeSetuid != 0 {
		bits |= 0o4000
	}
	opts := []string{"nosuid", "nodev", rw, "mode=" + strconv.FormatUint(uint64(bits), 8)}
	if m.SizeBytes > 0 {
		opts = append(opts, "size="+strconv.FormatInt(m.SizeBytes, 10))
	}
	return specs.Mount{Destination: filepath.Clean(m.Target), Type: "tmpfs", Source: "tmpfs", Options: opts}
}

// resources turns cores into a CFS quota over a 100 ms period, and a
// memory limit into the same limit on memory+swap, so the container has no
// swap (cgroup v1's memsw is a total).
func resources(r Resources) *specs.LinuxResources {
	res := &specs.LinuxResources{Devices: deviceRules()}
	if r.CPU > 0 {
		res.CPU = &specs.LinuxCPU{
			Quota:  ptr(int64(math.Round(r.CPU * cfsPeriod))),
			Period: ptr(uint64(cfsPeriod)),
		}
	}
	if r.MemoryBytes > 0 {
		res.Memory = &specs.LinuxMemory{Limit: ptr(r.MemoryBytes), Swap: ptr(r.MemoryBytes)}
	}
	if r.Pids > 0 {
		res.Pids = &specs.LinuxPids{Limit: ptr(r.Pids)}
	}
	return res
}
