package node

import (
	"math"
	"path/filepath"
	"slices"

	"berth.dev/berth/oci"
	"berth.dev/berth/policy"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CheckPolicy refuses (a *policy.Violation, errdefs.ErrPermissionDenied)
// settings the node policy does not allow in namespace ns: binds, host
// network, resources. CreateContainer calls it before any work, and again
// on the generated spec for what only the image says (the uid, the
// capabilities), so every container, whether from a manifest, `berth run`
// or the CRI, passes the same choke point. The controller calls it too,
// before it replaces a running container with one the policy refuses.
func (n *Node) CheckPolicy(ns string, s ContainerSettings) error {
	if n.opts.Policy == nil {
		return nil
	}
	return n.opts.Policy.Check(ns, policyRequest(s.Settings))
}

func policyRequest(s oci.Settings) policy.Request {
	r := policy.Request{
		HostNetwork: s.NetworkHost,
		User:        s.User,
		MemoryBytes: s.Resources.MemoryBytes,
		MilliCPU:    int64(math.Round(s.Resources.CPU * 1000)),
		Pids:        s.Resources.Pids,
	}
	for _, m := range s.Mounts {
		if m.Type != oci.MountBind {
			continue
		}
		b := policy.Bind{Source: m.Source, Target: m.Target}
		// runc's mount follows links, so what a link points at is checked
		// too. (A link changed between this check and the mount is not
		// seen: whoever can do that already writes the host's files.)
		if r, err := filepath.EvalSymlinks(m.Source); err == nil {
			b.Resolved = r
		}
		r.Binds = append(r.Binds, b)
	}
	return r
}

// checkSpecPolicy checks what the generated spec alone knows: the uid the
// image's user resolved to and the capabilities beyond the default set.
func (n *Node) checkSpecPolicy(ns string, s oci.Settings, sp *specs.Spec) error {
	if n.opts.Policy == nil || sp.Process == nil {
		return nil
	}
	r := policyRequest(s)
	uid := sp.Process.User.UID
	r.UID = &uid
	if c := sp.Process.Capabilities; c != nil {
		def := oci.DefaultCapabilities()
		for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
			for _, cp := range set {
				if !slices.Contains(def, cp) && !slices.Contains(r.AddedCapabilities, cp) {
					r.AddedCapabilities = append(r.AddedCapabilities, cp)
				}
			}
		}
	}
	return n.opts.Policy.Check(ns, r)
}
