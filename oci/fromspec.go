package oci

import (
	"fmt"
	"strings"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// FromSpec translates a Container's spec into Settings: the one translator
// from what a user declares to what the runtime spec is generated from.
// The API (berth run, berth container create) uses ParseMount, the same
// rule for mounts, so an option means the same from a file as from
// --mount. The runtime is not a Setting (the node resolves it to a
// binary): the caller passes cs.Runtime along.
func FromSpec(o spec.Object, cs spec.ContainerSpec) (Settings, error) {
	var s Settings
	if cs.Command != nil {
		s.Entrypoint = append([]string{}, cs.Command...)
	}
	s.Args = cs.Args
	for _, ev := range cs.Env {
		s.Env = append(s.Env, ev.Name+"="+ev.Value)
	}
	s.WorkingDir, s.User, s.Hostname = cs.WorkingDir, cs.User, cs.Hostname
	s.NetworkHost = cs.Network == spec.NetworkHost
	s.ReadonlyRootfs, s.Terminal = cs.ReadOnlyRootfs, cs.Terminal
	s.Init, s.StopSignal = cs.Init, cs.StopSignal
	if cs.Resources.CPU != "" {
		m, err := cs.Resources.CPU.MilliValue()
		if err != nil {
			return s, fmt.Errorf("spec.resources.cpu: %w", err)
		}
		s.Resources.CPU = float64(m) / 1000
	}
	if cs.Resources.Memory != "" {
		v, err := cs.Resources.Memory.Value()
		if err != nil {
			return s, fmt.Errorf("spec.resources.memory: %w", err)
		}
		s.Resources.MemoryBytes = v
	}
	s.Resources.Pids = cs.Resources.Pids
	for i, m := range cs.Mounts {
		source := m.Source
		if m.Type == "" || m.Type == MountBind {
			source = o.ResolvePath(m.Source) // relative to the manifest's file
		}
		om, err := ParseMount(string(m.Type), source, m.Target, m.ReadOnly, m.Options)
		if err != nil {
			return s, fmt.Errorf("spec.mounts[%d].%w", i, err)
		}
		s.Mounts = append(s.Mounts, om)
	}
	return s, nil
}

// ParseMount is a Mount from its type ("" is a bind mount), source, target,
// read-only flag and options: "ro", "rw" (the default, accepted so an
// explicit one is not an error) and "size=<quantity>" (a tmpfs's bound).
// Any other option is refused (InvalidArgument) rather than dropped: a
// mount must not silently differ from what was asked.
func ParseMount(typ, source, target string, readOnly bool, options []string) (Mount, error) {
	m := Mount{Type: typ, Source: source, Target: target, ReadOnly: readOnly}
	if m.Type == "" {
		m.Type = MountBind
	}
	for _, opt := range options {
		switch {
		case opt == "ro":
			m.ReadOnly = true
		case opt == "rw":
		case strings.HasPrefix(opt, "size="):
			v, err := spec.Quantity(strings.TrimPrefix(opt, "size=")).Value()
			if err != nil {
				return m, fmt.Errorf("options: %q: %w: %w", opt, err, errdefs.ErrInvalidArgument)
			}
			m.SizeBytes = v
		default:
			return m, fmt.Errorf("options: %q is not supported (ro, rw, size=): %w", opt, errdefs.ErrInvalidArgument)
		}
	}
	return m, nil
}

// MountOptions are the options ParseMount reads back to m (the API shows a
// container's mounts so).
func MountOptions(m Mount) []string {
	var opts []string
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	if m.SizeBytes > 0 {
		opts = append(opts, fmt.Sprintf("size=%d", m.SizeBytes))
	}
	return opts
}
