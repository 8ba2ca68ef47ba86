package oci

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Seccomp profile kinds of Security.Seccomp.
const (
	SeccompRuntimeDefault = ""           // berth's default profile (moby's)
	SeccompUnconfined     = "unconfined" // no filter
	SeccompLocalhost      = "localhost"  // the profile in the file SeccompProfile names
)

// Security is what a Kubernetes security context may change of berth's
// defaults; the CRI sets it, the manifests do not.
type Security struct {
	// CapAdd and CapDrop change the default capability set, in that order
	// after "ALL" in either (containerd's rule): names with or without
	// the CAP_ prefix, any case.
	CapAdd  []string `json:",omitempty"`
	CapDrop []string `json:",omitempty"`
	// Seccomp is SeccompRuntimeDefault, SeccompUnconfined or
	// SeccompLocalhost; SeccompProfile is the localhost profile's absolute
	// path (a Docker seccomp JSON profile).
	Seccomp        string `json:",omitempty"`
	SeccompProfile string `json:",omitempty"`
	// MaskedPaths and ReadonlyPaths, when not empty, replace the defaults.
	MaskedPaths   []string `json:",omitempty"`
	ReadonlyPaths []string `json:",omitempty"`
	// Sysctls are namespaced kernel parameters (net.*, kernel.shm*, ...)
	// set in the container's namespaces.
	Sysctls map[string]string `json:",omitempty"`
	// SupplementalGroups are added to the process's groups.
	SupplementalGroups []uint32 `json:",omitempty"`
	// StrictGroups leaves out the groups the image's /etc/group gives the
	// user (SupplementalGroupsPolicy Strict): the primary group and
	// SupplementalGroups only.
	StrictGroups bool `json:",omitempty"`
	// ProcUnmasked leaves /proc unmasked (ProcMountType Unmasked).
	ProcUnmasked bool `json:",omitempty"`
}

func (s *Security) validate() error {
	if s == nil {
		return nil
	}
	for _, c := range append(append([]string(nil), s.CapAdd...), s.CapDrop...) {
		if !strings.EqualFold(c, "ALL") && capBit(capName(c)) < 0 {
			return fmt.Errorf("capability %q: unknown: %w", c, errdefs.ErrInvalidArgument)
		}
	}
	switch s.Seccomp {
	case SeccompRuntimeDefault, SeccompUnconfined:
	case SeccompLocalhost:
		if !path.IsAbs(s.SeccompProfile) {
			return fmt.Errorf("seccomp localhost profile %q: want an absolute path: %w", s.SeccompProfile, errdefs.ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("seccomp %q: want %q, %q or %q: %w", s.Seccomp, SeccompRuntimeDefault, SeccompUnconfined, SeccompLocalhost, errdefs.ErrInvalidArgument)
	}
	for _, p := range append(append([]string(nil), s.MaskedPaths...), s.ReadonlyPaths...) {
		if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
			return fmt.Errorf("masked or read-only path %q: want an absolute path: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	for k, v := range s.Sysctls {
		if k == "" || strings.ContainsAny(k, "/\x00 ") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("sysctl %q: not a kernel parameter name: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	for _, g := range s.SupplementalGroups {
		if g > maxID {
			return fmt.Errorf("supplemental group %d: out of range 0..%d: %w", g, maxID, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// capNames are the kernel's capabilities by bit (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

func capBit(name string) int { return slices.Index(capNames, name) }

// ownCapabilities are the capabilities berthd's own process has (its
// effective set): "ALL" and privileged containers get these, never more,
// as containerd does, since runc cannot grant what its caller lacks (root
// here may lack CAP_SYS_RESOURCE).
func ownCapabilities() []string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return DefaultCapabilities()
	}
	return capsFromStatus(string(b))
}

// capsFromStatus reads the CapEff line of a /proc/<pid>/status.
func capsFromStatus(status string) []string {
	for _, l := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(l, "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			break
		}
		var out []string
		for i, n := range capNames {
			if mask&(1<<uint(i)) != 0 {
				out = append(out, n)
			}
		}
		return out
	}
	return DefaultCapabilities()
}

// capabilitySet is the default set changed as sec says, or everything
// berthd has when privileged.
func capabilitySet(sec *Security, privileged bool) []string {
	if privileged {
		return ownCapabilities()
	}
	caps := DefaultCapabilities()
	if sec == nil {
		return caps
	}
	has := func(l []string) bool {
		return slices.ContainsFunc(l, func(c string) bool { return strings.EqualFold(c, "ALL") })
	}
	if has(sec.CapAdd) {
		caps = ownCapabilities()
	}
	if has(sec.CapDrop) {
		caps = nil
	}
	for _, c := range sec.CapAdd {
		if n := capName(c); !strings.EqualFold(c, "ALL") && !slices.Contains(caps, n) {
			caps = append(caps, n)
		}
	}
	for _, c := range sec.CapDrop {
		n := capName(c)
		caps = slices.DeleteFunc(caps, func(x string) bool { return x == n })
	}
	return caps
}

// applySecurity changes a generated spec as the settings' security and
// Privileged say: capabilities, masked and read-only paths, sysctls,
// supplemental groups; the seccomp profile is seccompProfile's, last.
func applySecurity(sp *specs.Spec, s Settings) {
	sec := s.Security
	caps := capabilitySet(sec, s.Privileged)
	c := func() []string { return append([]string(nil), caps...) }
	sp.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c(), Effective: c(), Permitted: c()}
	if s.Privileged {
		// Privileged: kernel interfaces writable and unmasked, every
		// device of the cgroup allowed (as containerd, without copying the
		// host's /dev in: berth's pods get the standard /dev).
		sp.Linux.MaskedPaths, sp.Linux.ReadonlyPaths = nil, nil
		for i, m := range sp.Mounts {
			if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
				sp.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
				sp.Mounts[i].Options = append(sp.Mounts[i].Options, "rw")
			}
		}
		sp.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	if sec == nil {
		return
	}
	if !s.Privileged {
		if len(sec.MaskedPaths) > 0 {
			sp.Linux.MaskedPaths = slices.Clone(sec.MaskedPaths)
		}
		if len(sec.ReadonlyPaths) > 0 {
			sp.Linux.ReadonlyPaths = slices.Clone(sec.ReadonlyPaths)
		}
		if sec.ProcUnmasked {
			sp.Linux.MaskedPaths, sp.Linux.ReadonlyPaths = nil, nil
		}
	}
	if len(sec.Sysctls) > 0 {
		sp.Linux.Sysctl = map[string]string{}
		for k, v := range sec.Sysctls {
			sp.Linux.Sysctl[k] = v
		}
	}
	if sec.StrictGroups {
		sp.Process.User.AdditionalGids = []uint32{sp.Process.User.GID}
	}
	for _, g := range sec.SupplementalGroups {
		if !slices.Contains(sp.Process.User.AdditionalGids, g) {
			sp.Process.User.AdditionalGids = append(sp.Process.User.AdditionalGids, g)
		}
	}
}

// seccompProfile is the filter of the spec (computed from its final
// capability set): none when privileged or unconfined, the localhost
// file's, else berth's default.
func seccompProfile(sp *specs.Spec, s Settings) (*specs.LinuxSeccomp, error) {
	if s.Privileged {
		return nil, nil
	}
	kind := SeccompRuntimeDefault
	if s.Security != nil {
		kind = s.Security.Seccomp
	}
	switch kind {
	case SeccompUnconfined:
		return nil, nil
	case SeccompLocalhost:
		b, err := os.ReadFile(s.Security.SeccompProfile)
		if err != nil {
			return nil, fmt.Errorf("seccomp localhost profile: %w", err)
		}
		p, err := seccomp.LoadProfile(string(b), sp)
		if err != nil {
			return nil, fmt.Errorf("seccomp localhost profile %s: %w: %w", s.Security.SeccompProfile, err, errdefs.ErrInvalidArgument)
		}
		return p, nil
	}
	return seccomp.GetDefaultProfile(sp)
}
