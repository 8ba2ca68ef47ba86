package oci

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCapabilitySet(t *testing.T) {
	own := ownCapabilities()
	for _, tc := range []struct {
		name       string
		sec        *Security
		privileged bool
		want       []string
	}{
		{name: "defaults", want: DefaultCapabilities()},
		{name: "add without prefix, any case", sec: &Security{CapAdd: []string{"net_admin"}}, want: append(DefaultCapabilities(), "CAP_NET_ADMIN")},
		{name: "drop", sec: &Security{CapDrop: []string{"NET_RAW", "CAP_KILL"}},
			want: slices.DeleteFunc(DefaultCapabilities(), func(c string) bool { return c == "CAP_NET_RAW" || c == "CAP_KILL" })},
		{name: "drop all", sec: &Security{CapDrop: []string{"ALL"}}, want: nil},
		{name: "drop all then add", sec: &Security{CapDrop: []string{"all"}, CapAdd: []string{"SYS_ADMIN"}}, want: []string{"CAP_SYS_ADMIN"}},
		{name: "add all", sec: &Security{CapAdd: []string{"ALL"}}, want: own},
		{name: "privileged is berthd's own", privileged: true, sec: &Security{CapDrop: []string{"ALL"}}, want: own},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, capabilitySet(tc.sec, tc.privileged)); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCapsFromStatus(t *testing.T) {
	got := capsFromStatus("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000003001\n")
	if diff := cmp.Diff([]string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestGenerate_Security(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "block-chmod.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		s     Settings
		check func(t *testing.T, sp *specs.Spec)
	}{
		{name: "default seccomp and paths", s: Settings{ID: "c"}, check: func(t *testing.T, sp *specs.Spec) {
			if sp.Linux.Seccomp == nil || sp.Linux.Seccomp.DefaultAction != specs.ActErrno {
				t.Errorf("seccomp %+v, want the default profile", sp.Linux.Seccomp)
			}
			if !slices.Contains(sp.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(sp.Linux.ReadonlyPaths, "/proc/sys") {
				t.Errorf("masked %v readonly %v, want the defaults", sp.Linux.MaskedPaths, sp.Linux.ReadonlyPaths)
			}
		}},
		{name: "unconfined", s: Settings{ID: "c", Security: &Security{Seccomp: SeccompUnconfined}}, check: func(t *testing.T, sp *specs.Spec) {
			if sp.Linux.Seccomp != nil {
				t.Errorf("seccomp %+v, want none", sp.Linux.Seccomp)
			}
		}},
		{name: "localhost", s: Settings{ID: "c", Security: &Security{Seccomp: SeccompLocalhost, SeccompProfile: profile}}, check: func(t *testing.T, sp *specs.Spec) {
			if sp.Linux.Seccomp == nil || sp.Linux.Seccomp.DefaultAction != specs.ActAllow || len(sp.Linux.Seccomp.Syscalls) != 1 {
				t.Errorf("seccomp %+v, want the file's profile", sp.Linux.Seccomp)
			}
		}},
		{name: "paths, sysctls, groups", s: Settings{ID: "c", Security: &Security{MaskedPaths: []string{"/bin/ls"}, ReadonlyPaths: []string{"/tmp"},
			Sysctls: map[string]string{"kernel.shm_rmid_forced": "1"}, SupplementalGroups: []uint32{1234, 0}}}, check: func(t *testing.T, sp *specs.Spec) {
			if diff := cmp.Diff([]string{"/bin/ls"}, sp.Linux.MaskedPaths); diff != "" {
				t.Errorf("masked (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"/tmp"}, sp.Linux.ReadonlyPaths); diff != "" {
				t.Errorf("readonly (-want +got):\n%s", diff)
			}
			if sp.Linux.Sysctl["kernel.shm_rmid_forced"] != "1" {
				t.Errorf("sysctls %v", sp.Linux.Sysctl)
			}
			if diff := cmp.Diff([]uint32{0, 1234}, sp.Process.User.AdditionalGids); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		}},
		{name: "recursive read-only bind", s: Settings{ID: "c", Mounts: []Mount{{Type: MountBind, Source: "/srv", Target: "/d", ReadOnly: true, RecursiveReadOnly: true}}}, check: func(t *testing.T, sp *specs.Spec) {
			for _, m := range sp.Mounts {
				if m.Destination == "/d" && !(slices.Contains(m.Options, "ro") && slices.Contains(m.Options, "rro")) {
					t.Errorf("/d options %v, want ro and rro", m.Options)
				}
			}
		}},
		{name: "strict groups", s: Settings{ID: "c", User: "1000", Security: &Security{StrictGroups: true, SupplementalGroups: []uint32{1234}}}, check: func(t *testing.T, sp *specs.Spec) {
			if diff := cmp.Diff([]uint32{1000, 1234}, sp.Process.User.AdditionalGids); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		}},
		{name: "privileged", s: Settings{ID: "c", Privileged: true, Security: &Security{Seccomp: SeccompLocalhost, SeccompProfile: profile}}, check: func(t *testing.T, sp *specs.Spec) {
			if sp.Linux.Seccomp != nil || sp.Linux.MaskedPaths != nil || sp.Linux.ReadonlyPaths != nil {
				t.Errorf("seccomp %v masked %v readonly %v, want none", sp.Linux.Seccomp, sp.Linux.MaskedPaths, sp.Linux.ReadonlyPaths)
			}
			for _, m := range sp.Mounts {
				if m.Destination == "/sys" && slices.Contains(m.Options, "ro") {
					t.Errorf("/sys %v, want rw", m.Options)
				}
			}
			if diff := cmp.Diff(ownCapabilities(), sp.Process.Capabilities.Bounding); diff != "" {
				t.Errorf("bounding (-want +got):\n%s", diff)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, generate(t, tc.s)) })
	}
}
