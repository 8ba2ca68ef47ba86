package spec

import (
	"path/filepath"
	"strconv"
	"strings"
)

func (v *validator) container(s ContainerSpec) {
	if name, ok := imageNameFor(s.Image); ok {
		// A reference here is the most common first mistake (docker and
		// Kubernetes take one): say what the field means and what to write.
		v.add("spec.image", "%q looks like an image reference; spec.image names an Image object in the same namespace: "+
			"declare {kind: Image, metadata: {name: %s}, spec: {ref: %s}} and write image: %s", truncate(s.Image, 80), name, truncate(s.Image, 200), name)
	} else {
		v.dnsLabel("spec.image", s.Image)
	}
	size := 0
	for i, a := range s.Command {
		size += len(a) + 1
		if strings.ContainsRune(a, 0) {
			v.add(field("spec.command", i), "contains a NUL byte")
		}
	}
	for i, a := range s.Args {
		size += len(a) + 1
		if strings.ContainsRune(a, 0) {
			v.add(field("spec.args", i), "contains a NUL byte")
		}
	}
	if len(s.Env) > MaxEnv {
		v.add("spec.env", "%d variables, more than %d", len(s.Env), MaxEnv)
	}
	seen := map[string]bool{}
	for i, e := range s.Env {
		size += len(e.Name) + len(e.Value) + 2
		f := field("spec.env", i)
		switch {
		case e.Name == "":
			v.add(f+".name", "missing")
		case strings.ContainsAny(e.Name, "=\x00"):
			v.add(f+".name", "%q contains '=' or a NUL byte", truncate(e.Name, 80))
		case seen[e.Name]:
			v.add(f+".name", "%q is set twice", truncate(e.Name, 80))
		}
		seen[e.Name] = true
		if strings.ContainsRune(e.Value, 0) {
			v.add(f+".value", "contains a NUL byte")
		}
	}
	if size > MaxArgsEnvBytes {
		v.add("spec", "command, args and env take %d bytes, more than %d", size, MaxArgsEnvBytes)
	}
	if s.WorkingDir != "" {
		v.absPath("spec.workingDir", s.WorkingDir)
		if s.WorkingDir == "/proc" || strings.HasPrefix(s.WorkingDir, "/proc/") {
			v.add("spec.workingDir", "may not be under /proc")
		}
	}
	if s.User != "" && (!userRE.MatchString(s.User) || !userID(s.User)) {
		v.add("spec.user", "%q is not uid[:gid] or name[:group] (ids up to 2147483647)", truncate(s.User, 80))
	}
	v.mounts(s.Mounts)
	v.resources(s.Resources)
	switch s.Network {
	case NetworkHost, NetworkNone, NetworkBridge:
	default:
		if len(s.Network) > 63 || !dnsLabelRE.MatchString(string(s.Network)) {
			v.add("spec.network", "%q is not one of bridge, host, none or a Network's name", truncate(string(s.Network), 80))
		}
	}
	v.networkOptions(s)
	if s.Runtime != "" && (len(s.Runtime) > 63 || !runtimeRE.MatchString(s.Runtime)) { // "": the node's default
		v.add("spec.runtime", "%q is not a runtime name", truncate(s.Runtime, 80))
	}
	if s.StopSignal != "" {
		if _, err := ParseSignal(s.StopSignal); err != nil {
			v.add("spec.stopSignal", "%q is not a signal (SIGTERM, TERM or 15)", truncate(s.StopSignal, 32))
		}
	}
	v.probes(s.LivenessProbe, s.ReadinessProbe, s.StartupProbe)
	if s.Hostname != "" && (len(s.Hostname) > 63 || !dnsSubdomainRE.MatchString(s.Hostname)) {
		v.add("spec.hostname", "%q is not a host name (DNS-1123, at most 63)", truncate(s.Hostname, 80))
	}
}

func field(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// absPath requires a clean absolute path.
func (v *validator) absPath(f, p string) {
	switch {
	case strings.ContainsRune(p, 0):
		v.add(f, "contains a NUL byte")
	case !filepath.IsAbs(p):
		v.add(f, "%q is not an absolute path", truncate(p, 80))
	case filepath.Clean(p) != p:
		v.add(f, "%q is not a clean path (want %q)", truncate(p, 80), truncate(filepath.Clean(p), 80))
	}
}

func (v *validator) mounts(ms []Mount) {
	if len(ms) > MaxMounts {
		v.add("spec.mounts", "%d mounts, more than %d", len(ms), MaxMounts)
	}
	targets := map[string]bool{}
	for i, m := range ms {
		f := field("spec.mounts", i)
		v.absPath(f+".target", m.Target)
		if m.Target == "/" {
			v.add(f+".target", "may not be /")
		}
		if targets[m.Target] {
			v.add(f+".target", "%q is mounted twice", truncate(m.Target, 80))
		}
		targets[m.Target] = true
		switch m.Type {
		case MountBind:
			if m.Source == "" {
				v.add(f+".source", "missing (a bind mount needs a host path)")
			} else {
				v.absPath(f+".source", m.Source)
			}
		case MountTmpfs:
			if m.Source != "" {
				v.add(f+".source", "a tmpfs has no source")
			}
		default:
			v.add(f+".type", "%q is not one of bind, tmpfs", m.Type)
		}
		for j, opt := range m.Options {
			if opt == "" || strings.ContainsAny(opt, ",\x00") {
				v.add(field(f+".options", j), "%q is not a mount option", truncate(opt, 80))
			}
		}
	}
}

func (v *validator) resources(r Resources) {
	if r.CPU != "" {
		if _, err := r.CPU.rat(); err != nil {
			v.add("spec.resources.cpu", "%v", err)
		} else if n, err := r.CPU.MilliValue(); err != nil {
			v.add("spec.resources.cpu", "%v", err)
		} else if n == 0 {
			v.add("spec.resources.cpu", "%q is less than 1m", string(r.CPU))
		}
	}
	if r.Memory != "" {
		if _, err := r.Memory.rat(); err != nil {
			v.add("spec.resources.memory", "%v", err)
		} else if n, err := r.Memory.Value(); err != nil {
			v.add("spec.resources.memory", "%v", err)
		} else if n == 0 {
			v.add("spec.resources.memory", "%q is zero", string(r.Memory))
		}
	}
	if r.Pids < 0 {
		v.add("spec.resources.pids", "%d is negative", r.Pids)
	}
}

// imageNameFor says whether ref, written where an Image's name belongs, is an
// image reference rather than a name, and which name to give its Image: the
// last path element without tag or digest, made a DNS-1123 label.
func imageNameFor(ref string) (string, bool) {
	if IsDNSLabel(ref) || !strings.ContainsAny(ref, "/:@") ||
		len(ref) > maxReferenceBytes || !referenceRE.MatchString(ref) {
		return "", false
	}
	name := ref
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	name = name[strings.LastIndexByte(name, '/')+1:]
	if i := strings.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	name = strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(name)), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if !IsDNSLabel(name) {
		name = "app"
	}
	return name, true
}
