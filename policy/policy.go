// Package policy is the node policy: what the containers of a namespace
// may ask of the host. Whoever can write a manifest in the watched
// directory (or reach the API) can otherwise bind-mount the host's / and
// berthd's own socket, as uid 0 on the host network, and so own the node:
// the same power kubelet static pods grant. The policy lets an operator
// limit that per namespace, the way Pod Security Admission's levels do.
//
// The configuration (berthd's `policy` section) has a default entry and
// one entry per namespace; a field a namespace entry leaves out is the
// default entry's, and a field the default entry leaves out is the
// built-in value below. Every refusal is a *Violation naming the key of
// the entry that set the rule (policy.default.allowedBindPrefixes,
// policy.namespaces.k8s.io.allowHostNetwork), so the operator knows what
// to loosen.
//
// Built-in values (what a node with no policy section enforces):
//
//	allowedBindPrefixes     any host path
//	protectedPaths          berthd's root, state directory, sockets,
//	                        manifest and CNI configuration directories
//	                        (given by the daemon); a bind
//	                        of one of them, of a path inside one, or of a
//	                        directory holding one (so / itself) is refused
//	allowHostNetwork        true
//	allowRootUser           true
//	allowAddedCapabilities  true
//	maxMemory, maxCPU,
//	maxPids                 no limit
//
// The package is pure: the node resolves symbolic links of bind sources
// and hands Check what it found.
package policy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// Config is berthd's `policy` section.
type Config struct {
	// Default applies to every namespace, field by field under what its
	// own entry says.
	Default Entry `json:"default,omitzero"`
	// Namespaces are entries by namespace name ("k8s.io" for CRI pods).
	Namespaces map[string]Entry `json:"namespaces,omitempty"`
}

// Entry is one namespace's rules. A nil (or empty string) field is not
// set here: it takes the default entry's value, then the built-in one.
// An empty list is set: allowedBindPrefixes: [] allows no bind at all.
type Entry struct {
	// AllowedBindPrefixes are the host paths a bind mount's source must be
	// (or be inside), after symbolic links are resolved as well as before.
	AllowedBindPrefixes []string `json:"allowedBindPrefixes,omitempty"`
	// ProtectedPaths are host paths no bind may reach: a bind of one, of a
	// path inside one, or of a directory above one is refused.
	ProtectedPaths []string `json:"protectedPaths,omitempty"`
	// AllowHostNetwork allows network: host.
	AllowHostNetwork *bool `json:"allowHostNetwork,omitempty"`
	// AllowRootUser allows a process running as uid 0 (which the image's
	// user or an unset user is, for most images).
	AllowRootUser *bool `json:"allowRootUser,omitempty"`
	// AllowAddedCapabilities allows capabilities beyond the default set.
	AllowAddedCapabilities *bool `json:"allowAddedCapabilities,omitempty"`
	// MaxMemory, MaxCPU and MaxPids cap resources.memory, .cpu and .pids;
	// when set, a container must set its own limit, at most the cap ("0"
	// lifts a cap the default entry set).
	MaxMemory spec.Quantity `json:"maxMemory,omitempty"`
	MaxCPU    spec.Quantity `json:"maxCPU,omitempty"`
	MaxPids   *int64        `json:"maxPids,omitempty"`
}

// Violation is a refusal by the policy. It matches
// errdefs.ErrPermissionDenied, so the API answers PermissionDenied.
type Violation struct {
	// Namespace is the namespace of the refused container.
	Namespace string
	// Key is the policy key of the rule, e.g.
	// "policy.default.allowedBindPrefixes".
	Key string
	// Reason says what the container asked for and what the rule allows.
	Reason string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("%s: %s (refused by the node policy for namespace %s)", v.Key, v.Reason, v.Namespace)
}

// Unwrap makes a Violation errdefs.IsPermissionDenied.
func (v *Violation) Unwrap() error { return errdefs.ErrPermissionDenied }

// setting is one resolved rule and the key of the entry that set it.
type setting[T any] struct {
	v   T
	key string
	set bool
	// text is the value as configured, for the error.
	text string
}

// Rules are the resolved rules of one namespace.
type Rules struct {
	ns                  string
	bindPrefixes        setting[[]string]
	protected           setting[[]string]
	hostNetwork         setting[bool]
	rootUser            setting[bool]
	addedCaps           setting[bool]
	maxMemory, maxMilli setting[int64]
	maxPids             setting[int64]
}

// Policy is a compiled Config.
type Policy struct {
	def *Entry
	ns  map[string]*Entry
	// builtinProtected is the built-in protectedPaths.
	builtinProtected []string
}

// Compile checks c and returns its policy. builtinProtected are the
// protectedPaths of an entry that sets none (berthd's own paths); resolve,
// when not nil, resolves a path's symbolic links, so a protected path
// reached through a link is protected under both names.
func Compile(c Config, builtinProtected []string, resolve func(string) (string, error)) (*Policy, error) {
	p := &Policy{ns: map[string]*Entry{}}
	var err error
	if p.builtinProtected, err = cleanPaths("policy.protectedPaths (built-in)", builtinProtected, resolve); err != nil {
		return nil, err
	}
	def := c.Default
	if err := compileEntry("policy.default", &def, resolve); err != nil {
		return nil, err
	}
	p.def = &def
	for name, e := range c.Namespaces {
		key := "policy.namespaces." + name
		if !validNamespace(name) {
			return nil, fmt.Errorf("%s: %q is not a namespace name (lower case letters, digits, '-' and '.'): %w", key, name, errdefs.ErrInvalidArgument)
		}
		if err := compileEntry(key, &e, resolve); err != nil {
			return nil, err
		}
		p.ns[name] = &e
	}
	return p, nil
}

// validNamespace accepts DNS-1123 subdomains: berth's namespaces are
// labels, and the CRI's is k8s.io.
func validNamespace(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !spec.IsDNSLabel(l) {
			return false
		}
	}
	return true
}

func compileEntry(key string, e *Entry, resolve func(string) (string, error)) error {
	var err error
	if e.AllowedBindPrefixes != nil {
		// Prefixes are not resolved: a link under an allowed prefix
		// pointing elsewhere is refused by the resolved check.
		if e.AllowedBindPrefixes, err = cleanPaths(key+".allowedBindPrefixes", e.AllowedBindPrefixes, nil); err != nil {
			return err
		}
	}
	if e.ProtectedPaths != nil {
		if e.ProtectedPaths, err = cleanPaths(key+".protectedPaths", e.ProtectedPaths, resolve); err != nil {
			return err
		}
	}
	if _, err := quantity(e.MaxMemory, 1); err != nil {
		return fmt.Errorf("%s.maxMemory: %w", key, err)
	}
	if _, err := quantity(e.MaxCPU, 1000); err != nil {
		return fmt.Errorf("%s.maxCPU: %w", key, err)
	}
	if e.MaxPids != nil && *e.MaxPids < 0 {
		return fmt.Errorf("%s.maxPids: %d is negative: %w", key, *e.MaxPids, errdefs.ErrInvalidArgument)
	}
	return nil
}

// cleanPaths checks that every path is absolute and returns them cleaned,
// with their resolved forms added.
func cleanPaths(key string, ps []string, resolve func(string) (string, error)) ([]string, error) {
	out := make([]string, 0, len(ps))
	for i, p := range ps {
		if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
			return nil, fmt.Errorf("%s[%d]: %q is not an absolute path: %w", key, i, p, errdefs.ErrInvalidArgument)
		}
		out = append(out, path.Clean(p))
		if resolve != nil {
			if r, err := resolve(p); err == nil && r != "" && path.IsAbs(r) {
				out = append(out, path.Clean(r))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// quantity reads q scaled (1 for bytes, 1000 for millicores); "" is 0.
func quantity(q spec.Quantity, scale int64) (int64, error) {
	if q == "" {
		return 0, nil
	}
	var v int64
	var err error
	if scale == 1000 {
		v, err = q.MilliValue()
	} else {
		v, err = q.Value()
	}
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative: %w", string(q), errdefs.ErrInvalidArgument)
	}
	return v, nil
}

// For resolves the rules of namespace ns: its entry over the default
// entry over the built-in values. Any namespace name works, dotted ones
// (k8s.io) included; one with no entry gets the default entry's rules.
func (p *Policy) For(ns string) Rules {
	r := Rules{ns: ns}
	r.protected = setting[[]string]{v: p.builtinProtected, key: "policy.default.protectedPaths", set: true}
	r.hostNetwork = setting[bool]{v: true}
	r.rootUser = setting[bool]{v: true}
	r.addedCaps = setting[bool]{v: true}
	layers := []struct {
		key string
		e   *Entry
	}{{"policy.default", p.def}}
	if e, ok := p.ns[ns]; ok {
		layers = append(layers, struct {
			key string
			e   *Entry
		}{"policy.namespaces." + ns, e})
	}
	for _, l := range layers {
		e := l.e
		if e == nil {
			continue
		}
		if e.AllowedBindPrefixes != nil {
			r.bindPrefixes = setting[[]string]{v: e.AllowedBindPrefixes, key: l.key + ".allowedBindPrefixes", set: true}
		}
		if e.ProtectedPaths != nil {
			r.protected = setting[[]string]{v: e.ProtectedPaths, key: l.key + ".protectedPaths", set: true}
		}
		if e.AllowHostNetwork != nil {
			r.hostNetwork = setting[bool]{v: *e.AllowHostNetwork, key: l.key + ".allowHostNetwork", set: true}
		}
		if e.AllowRootUser != nil {
			r.rootUser = setting[bool]{v: *e.AllowRootUser, key: l.key + ".allowRootUser", set: true}
		}
		if e.AllowAddedCapabilities != nil {
			r.addedCaps = setting[bool]{v: *e.AllowAddedCapabilities, key: l.key + ".allowAddedCapabilities", set: true}
		}
		if e.MaxMemory != "" {
			v, _ := quantity(e.MaxMemory, 1) // checked by Compile
			r.maxMemory = setting[int64]{v: v, key: l.key + ".maxMemory", set: v > 0, text: string(e.MaxMemory)}
		}
		if e.MaxCPU != "" {
			v, _ := quantity(e.MaxCPU, 1000)
			r.maxMilli = setting[int64]{v: v, key: l.key + ".maxCPU", set: v > 0, text: string(e.MaxCPU)}
		}
		if e.MaxPids != nil {
			r.maxPids = setting[int64]{v: *e.MaxPids, key: l.key + ".maxPids", set: *e.MaxPids > 0}
		}
	}
	return r
}

// Bind is one bind mount a container asks for.
type Bind struct {
	// Source is the host path as written.
	Source string
	// Resolved is Source with its symbolic links resolved ("" when it
	// could not be: it does not exist yet, say).
	Resolved string
	// Target is the path in the container, for the error.
	Target string
}

// Request is what a container asks of the host.
type Request struct {
	Binds       []Bind
	HostNetwork bool
	// UID is the uid the process runs as, when known (after the image's
	// /etc/passwd was read); nil skips the uid rule.
	UID *uint32
	// User is the user as written, for the error.
	User string
	// AddedCapabilities are the capabilities beyond the default set.
	AddedCapabilities []string
	// MemoryBytes, MilliCPU and Pids are the limits asked for; 0 is none.
	MemoryBytes int64
	MilliCPU    int64
	Pids        int64
}

// Check refuses r under ns's rules with the first *Violation found.
func (p *Policy) Check(ns string, r Request) error {
	if p == nil {
		return nil
	}
	return p.For(ns).Check(r)
}

// Check refuses r with the first *Violation found, nil if r is allowed.
func (rl Rules) Check(r Request) error {
	deny := func(key, format string, args ...any) error {
		return &Violation{Namespace: rl.ns, Key: key, Reason: fmt.Sprintf(format, args...)}
	}
	for _, b := range r.Binds {
		names := []string{path.Clean(b.Source)}
		if b.Resolved != "" && path.Clean(b.Resolved) != names[0] {
			names = append(names, path.Clean(b.Resolved))
		}
		for _, s := range names {
			shown := fmt.Sprintf("%q", s)
			if s != names[0] {
				shown = fmt.Sprintf("%q (%q resolved)", s, names[0])
			}
			for _, prot := range rl.protected.v {
				switch {
				case s == prot:
					return deny(rl.protected.key, "bind source %s on %s is protected", shown, b.Target)
				case within(s, prot):
					return deny(rl.protected.key, "bind source %s on %s is inside protected %s", shown, b.Target, prot)
				case within(prot, s):
					return deny(rl.protected.key, "bind source %s on %s holds protected %s", shown, b.Target, prot)
				}
			}
			if rl.bindPrefixes.set && !slices.ContainsFunc(rl.bindPrefixes.v, func(pre string) bool { return s == pre || within(s, pre) }) {
				allowed := "no bind mounts are allowed"
				if len(rl.bindPrefixes.v) > 0 {
					allowed = "allowed: " + strings.Join(rl.bindPrefixes.v, ", ")
				}
				return deny(rl.bindPrefixes.key, "bind source %s on %s is not under an allowed prefix (%s)", shown, b.Target, allowed)
			}
		}
	}
	if r.HostNetwork && !rl.hostNetwork.v {
		return deny(rl.hostNetwork.key, "host network is not allowed")
	}
	if r.UID != nil && *r.UID == 0 && !rl.rootUser.v {
		user := r.User
		if user == "" {
			user = "the image's"
		}
		return deny(rl.rootUser.key, "the process would run as uid 0 (user %s): set a non-root user", user)
	}
	if len(r.AddedCapabilities) > 0 && !rl.addedCaps.v {
		return deny(rl.addedCaps.key, "added capabilities %s are not allowed", strings.Join(r.AddedCapabilities, ", "))
	}
	if m := rl.maxMemory; m.set && (r.MemoryBytes == 0 || r.MemoryBytes > m.v) {
		return deny(m.key, "resources.memory %s: want a limit of at most %s", limit(r.MemoryBytes), m.text)
	}
	if m := rl.maxMilli; m.set && (r.MilliCPU == 0 || r.MilliCPU > m.v) {
		return deny(m.key, "resources.cpu %s: want a limit of at most %s cores", limitMilli(r.MilliCPU), m.text)
	}
	if m := rl.maxPids; m.set && (r.Pids == 0 || r.Pids > m.v) {
		return deny(m.key, "resources.pids %s: want a limit of at most %d", limit(r.Pids), m.v)
	}
	return nil
}

func limit(v int64) string {
	if v == 0 {
		return "unset (no limit)"
	}
	return fmt.Sprint(v)
}

func limitMilli(v int64) string {
	if v == 0 {
		return "unset (no limit)"
	}
	return fmt.Sprintf("%g cores", float64(v)/1000)
}

// within reports whether p is strictly inside dir.
func within(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}
