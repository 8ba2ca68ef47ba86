package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/policy"
)

func TestUnpackConfig_Options(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       UnpackConfig
		wantLayer int64
		wantBytes uint64
		wantPct   float64
		wantErr   string
	}{
		{name: "defaults", cfg: DefaultConfig().Unpack, wantLayer: 64 << 30, wantPct: 2},
		{name: "size reserve", cfg: UnpackConfig{MaxLayerSize: "1Gi", FreeSpaceReserve: "512Mi"}, wantLayer: 1 << 30, wantBytes: 512 << 20},
		{name: "reserve off", cfg: UnpackConfig{FreeSpaceReserve: "0"}},
		{name: "bad percentage", cfg: UnpackConfig{FreeSpaceReserve: "150%"}, wantErr: "unpack.freeSpaceReserve"},
		{name: "bad size", cfg: UnpackConfig{FreeSpaceReserve: "lots"}, wantErr: "unpack.freeSpaceReserve"},
		{name: "negative layer cap", cfg: UnpackConfig{MaxLayerSize: "-1"}, wantErr: "unpack.maxLayerSize"},
		{name: "bad image cap", cfg: UnpackConfig{MaxImageSize: "64MB"}, wantErr: "unpack.maxImageSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := tc.cfg.Options()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.Limits.MaxSize != tc.wantLayer || opts.FreeSpace.Bytes != tc.wantBytes || opts.FreeSpace.Percent != tc.wantPct {
				t.Errorf("got layer cap %d, reserve %d bytes / %v%%", opts.Limits.MaxSize, opts.FreeSpace.Bytes, opts.FreeSpace.Percent)
			}
		})
	}
}

func TestLoadConfig_BadUnpackKeyNamed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte("unpack:\n  freeSpaceReserve: lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(p, true)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "unpack.freeSpaceReserve") {
		t.Fatalf("err %v, want one naming the file and unpack.freeSpaceReserve", err)
	}
}

// TestLoadConfig_Policy reads a policy section as an operator writes it: a
// default entry and a dotted namespace's (the CRI's k8s.io), and refuses a
// bad or unknown key by name.
func TestLoadConfig_Policy(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadConfig(write(`
root: /var/lib/berth-x
policy:
  default:
    allowedBindPrefixes: [/srv]
  namespaces:
    k8s.io:
      allowHostNetwork: false
      maxMemory: 1Gi
`), true)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := cfg.NodePolicy()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ns   string
		req  policy.Request
		want string
	}{
		{"default", policy.Request{Binds: []policy.Bind{{Source: "/srv/a", Target: "/a"}}}, ""},
		{"default", policy.Request{Binds: []policy.Bind{{Source: "/home", Target: "/a"}}}, "policy.default.allowedBindPrefixes"},
		{"default", policy.Request{Binds: []policy.Bind{{Source: "/var/lib/berth-x", Target: "/a"}}}, "policy.default.protectedPaths"},
		{"default", policy.Request{Binds: []policy.Bind{{Source: "/run/berth/berth.sock", Target: "/a"}}}, "policy.default.protectedPaths"},
		{"k8s.io", policy.Request{HostNetwork: true, MemoryBytes: 1 << 20}, "policy.namespaces.k8s.io.allowHostNetwork"},
		{"k8s.io", policy.Request{}, "policy.namespaces.k8s.io.maxMemory"},
		{"default", policy.Request{HostNetwork: true}, ""},
	} {
		err := pol.Check(tc.ns, tc.req)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %+v: err %v, want %q", tc.ns, tc.req, err, tc.want)
		}
	}
	for body, want := range map[string]string{
		"policy:\n  default:\n    allowedBindPrefixes: [srv]\n": "policy.default.allowedBindPrefixes[0]",
		"policy:\n  default:\n    allowHostNet: false\n":        "allowHostNet",
		"policy:\n  namespaces:\n    A/B: {}\n":                 "policy.namespaces.A/B",
	} {
		if _, err := LoadConfig(write(body), true); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: err %v, want one naming %s", body, err, want)
		}
	}
}

func TestLoadConfig_CNI(t *testing.T) {
	if got := DefaultConfig().CNI; got.BinDir != "/usr/lib/cni" || got.ConfDir != "/etc/berth/cni/net.d" {
		t.Errorf("default cni config %+v", got)
	}
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte("cni:\n  binDir: /opt/cni/bin:/usr/lib/cni\n  confDir: /etc/cni/net.d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if dirs := cfg.CNI.BinDirs(); len(dirs) != 2 || dirs[0] != "/opt/cni/bin" || cfg.CNI.ConfDir != "/etc/cni/net.d" {
		t.Errorf("got bin dirs %v, conf dir %q", dirs, cfg.CNI.ConfDir)
	}
}
