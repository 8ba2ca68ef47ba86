package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func ptr[T any](v T) *T { return &v }

// berthPaths are what berthd passes as the built-in protected paths.
var berthPaths = []string{"/var/lib/berth", "/run/berth", "/run/berth/berth.sock", "/etc/berth/manifests"}

func bind(src string) Request { return Request{Binds: []Bind{{Source: src, Target: "/mnt"}}} }

func TestCheck(t *testing.T) {
	locked := Config{
		Default: Entry{AllowedBindPrefixes: []string{"/srv/data", "/opt/app/"}},
		Namespaces: map[string]Entry{
			"k8s.io": {AllowHostNetwork: ptr(false), AllowRootUser: ptr(false), AllowAddedCapabilities: ptr(false),
				MaxMemory: "1Gi", MaxCPU: "2", MaxPids: ptr[int64](100)},
			"nobinds": {AllowedBindPrefixes: []string{}},
			"loose":   {ProtectedPaths: []string{}},
			"lifted":  {MaxMemory: "0"},
		},
	}
	root, uid1000 := ptr[uint32](0), ptr[uint32](1000)
	okK8s := Request{UID: uid1000, MemoryBytes: 1 << 30, MilliCPU: 2000, Pids: 100}
	for _, tc := range []struct {
		name string
		cfg  Config
		ns   string
		req  Request
		// key is the policy key of the violation, "" for allowed.
		key string
		// msg is a fragment of the error.
		msg string
	}{
		{name: "empty request", ns: "default"},
		{name: "ordinary bind", ns: "default", req: bind("/srv/www")},
		{name: "bind of /", ns: "default", req: bind("/"), key: "policy.default.protectedPaths", msg: `bind source "/" on /mnt holds protected /etc/berth/manifests`},
		{name: "bind of / unclean", ns: "default", req: bind("//./"), key: "policy.default.protectedPaths"},
		{name: "bind of root", ns: "default", req: bind("/var/lib/berth"), key: "policy.default.protectedPaths", msg: "is protected"},
		{name: "bind inside root", ns: "default", req: bind("/var/lib/berth/content"), key: "policy.default.protectedPaths", msg: "inside protected /var/lib/berth"},
		{name: "bind above root", ns: "default", req: bind("/var/lib"), key: "policy.default.protectedPaths", msg: "holds protected /var/lib/berth"},
		{name: "bind of state", ns: "default", req: bind("/run/berth"), key: "policy.default.protectedPaths"},
		{name: "bind of socket", ns: "default", req: bind("/run/berth/berth.sock"), key: "policy.default.protectedPaths"},
		{name: "sibling sharing a prefix", ns: "default", req: bind("/var/lib/berthx")},
		{name: "sibling of state", ns: "default", req: bind("/run/user")},
		{name: "link to the state dir", ns: "default", req: Request{Binds: []Bind{{Source: "/tmp/x", Resolved: "/run/berth", Target: "/x"}}},
			key: "policy.default.protectedPaths", msg: `"/run/berth" ("/tmp/x" resolved)`},
		{name: "dotted namespace without an entry gets the default", ns: "other.example", req: bind("/"), key: "policy.default.protectedPaths"},

		{name: "allowed prefix", cfg: locked, ns: "default", req: bind("/srv/data/x")},
		{name: "allowed prefix itself", cfg: locked, ns: "default", req: bind("/srv/data")},
		{name: "allowed prefix written with a slash", cfg: locked, ns: "default", req: bind("/opt/app/bin")},
		{name: "prefix is a path element, not a string", cfg: locked, ns: "default", req: bind("/srv/database"),
			key: "policy.default.allowedBindPrefixes", msg: "allowed: /opt/app, /srv/data"},
		{name: "outside the prefixes", cfg: locked, ns: "default", req: bind("/home"), key: "policy.default.allowedBindPrefixes"},
		{name: "link out of an allowed prefix", cfg: locked, ns: "default", req: Request{Binds: []Bind{{Source: "/srv/data/l", Resolved: "/home", Target: "/x"}}},
			key: "policy.default.allowedBindPrefixes"},
		{name: "protected wins over allowed", cfg: Config{Default: Entry{AllowedBindPrefixes: []string{"/"}}}, ns: "default", req: bind("/run/berth"),
			key: "policy.default.protectedPaths"},
		{name: "namespace inherits the default's prefixes", cfg: locked, ns: "k8s.io", req: Request{Binds: bind("/home").Binds, UID: uid1000, MemoryBytes: 1, MilliCPU: 1, Pids: 1},
			key: "policy.default.allowedBindPrefixes"},
		{name: "empty prefix list allows no bind", cfg: locked, ns: "nobinds", req: bind("/srv/data"),
			key: "policy.namespaces.nobinds.allowedBindPrefixes", msg: "no bind mounts are allowed"},
		{name: "loosened protection", cfg: locked, ns: "loose", req: bind("/srv/data")},
		{name: "loosened protection allows the state dir", cfg: Config{Default: Entry{ProtectedPaths: []string{}}}, ns: "default", req: bind("/run/berth")},
		{name: "tightened protection", cfg: Config{Default: Entry{ProtectedPaths: []string{"/home"}}}, ns: "default", req: bind("/home/me"),
			key: "policy.default.protectedPaths"},
		{name: "tightened protection replaces the built-in", cfg: Config{Default: Entry{ProtectedPaths: []string{"/home"}}}, ns: "default", req: bind("/run/berth")},

		{name: "k8s.io within limits", cfg: locked, ns: "k8s.io", req: okK8s},
		{name: "k8s.io host network", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.HostNetwork = true }),
			key: "policy.namespaces.k8s.io.allowHostNetwork", msg: "host network is not allowed"},
		{name: "host network by default", cfg: locked, ns: "default", req: Request{HostNetwork: true}},
		{name: "k8s.io root", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.UID = root }),
			key: "policy.namespaces.k8s.io.allowRootUser", msg: "uid 0 (user the image's)"},
		{name: "k8s.io root named", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.UID, r.User = root, "root" }),
			key: "policy.namespaces.k8s.io.allowRootUser", msg: "user root"},
		{name: "uid unknown skips the rule", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.UID = nil })},
		{name: "root by default", cfg: locked, ns: "default", req: Request{UID: root}},
		{name: "k8s.io added caps", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.AddedCapabilities = []string{"CAP_SYS_ADMIN"} }),
			key: "policy.namespaces.k8s.io.allowAddedCapabilities", msg: "CAP_SYS_ADMIN"},
		{name: "k8s.io no memory limit", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.MemoryBytes = 0 }),
			key: "policy.namespaces.k8s.io.maxMemory", msg: "unset (no limit): want a limit of at most 1Gi"},
		{name: "k8s.io memory over", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.MemoryBytes = 1<<30 + 1 }),
			key: "policy.namespaces.k8s.io.maxMemory"},
		{name: "k8s.io cpu over", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.MilliCPU = 2001 }),
			key: "policy.namespaces.k8s.io.maxCPU", msg: "2.001 cores"},
		{name: "k8s.io pids unset", cfg: locked, ns: "k8s.io", req: with(okK8s, func(r *Request) { r.Pids = 0 }),
			key: "policy.namespaces.k8s.io.maxPids"},
		{name: "cap set by default, lifted by a namespace", cfg: Config{Default: Entry{MaxMemory: "64Mi"}, Namespaces: map[string]Entry{"lifted": {MaxMemory: "0"}}},
			ns: "lifted", req: Request{}},
		{name: "cap set by default applies", cfg: Config{Default: Entry{MaxMemory: "64Mi"}}, ns: "x", req: Request{MemoryBytes: 128 << 20},
			key: "policy.default.maxMemory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile(tc.cfg, berthPaths, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check(tc.ns, tc.req)
			if tc.key == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var v *Violation
			if !errors.As(err, &v) {
				t.Fatalf("err = %v, want a *Violation", err)
			}
			if v.Key != tc.key {
				t.Errorf("key = %s, want %s (%v)", v.Key, tc.key, err)
			}
			if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not name %s and %q", err, tc.key, tc.msg)
			}
			if !errdefs.IsPermissionDenied(err) {
				t.Errorf("error %v is not PermissionDenied", err)
			}
			if v.Namespace != tc.ns {
				t.Errorf("namespace = %s, want %s", v.Namespace, tc.ns)
			}
		})
	}
}

func with(r Request, f func(*Request)) Request { f(&r); return r }

func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"relative prefix", Config{Default: Entry{AllowedBindPrefixes: []string{"srv"}}}, "policy.default.allowedBindPrefixes[0]"},
		{"relative protected", Config{Namespaces: map[string]Entry{"a": {ProtectedPaths: []string{"/ok", "x"}}}}, "policy.namespaces.a.protectedPaths[1]"},
		{"bad memory", Config{Default: Entry{MaxMemory: "lots"}}, "policy.default.maxMemory"},
		{"negative cpu", Config{Default: Entry{MaxCPU: "-1"}}, "policy.default.maxCPU"},
		{"negative pids", Config{Default: Entry{MaxPids: ptr[int64](-1)}}, "policy.default.maxPids"},
		{"namespace that is a path", Config{Namespaces: map[string]Entry{"../x": {}}}, `policy.namespaces.../x: "../x" is not a namespace name`},
		{"empty namespace", Config{Namespaces: map[string]Entry{"": {}}}, "is not a namespace name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.cfg, berthPaths, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
	if _, err := Compile(Config{}, []string{"relative"}, nil); err == nil {
		t.Error("a relative built-in protected path was accepted")
	}
}

// TestCompileResolves protects a protected path under its resolved name as
// well, so a root reached through a link cannot be bound by its target.
func TestCompileResolves(t *testing.T) {
	resolve := func(p string) (string, error) {
		if p == "/var/lib/berth" {
			return "/data/berth", nil
		}
		return p, nil
	}
	p, err := Compile(Config{}, []string{"/var/lib/berth"}, resolve)
	if err != nil {
		t.Fatal(err)
	}
	var v *Violation
	if err := p.Check("default", bind("/data/berth/content")); !errors.As(err, &v) {
		t.Fatalf("bind of the resolved root: err = %v, want a violation", err)
	}
	if err := p.Check("default", bind("/data/other")); err != nil {
		t.Fatalf("bind beside the resolved root: %v", err)
	}
}

func TestNilPolicyAllows(t *testing.T) {
	var p *Policy
	if err := p.Check("default", bind("/")); err != nil {
		t.Fatal(err)
	}
}
