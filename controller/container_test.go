package controller

import (
	"testing"

	"berth.dev/berth/oci"
	"berth.dev/berth/spec"
	"github.com/google/go-cmp/cmp"
)

func TestContainerSettings(t *testing.T) {
	t.Parallel()
	obj := spec.Object{Origin: spec.Origin{Dir: "/etc/berth/manifests"}}
	tests := []struct {
		name    string
		in      spec.ContainerSpec
		check   func(t *testing.T, s oci.Settings)
		wantErr bool
	}{
		{
			name: "command replaces the entrypoint, args the cmd",
			in:   spec.ContainerSpec{Command: []string{"httpd", "-f"}, Args: []string{"-p", "80"}},
			check: func(t *testing.T, s oci.Settings) {
				if diff := cmp.Diff([]string{"httpd", "-f"}, s.Entrypoint); diff != "" {
					t.Errorf("entrypoint (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"-p", "80"}, s.Args); diff != "" {
					t.Errorf("args (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "no command keeps the image's entrypoint",
			in:   spec.ContainerSpec{},
			check: func(t *testing.T, s oci.Settings) {
				if s.Entrypoint != nil {
					t.Errorf("entrypoint: got %q, want nil", s.Entrypoint)
				}
			},
		},
		{
			name: "env, network and resources",
			in: spec.ContainerSpec{Env: []spec.EnvVar{{Name: "A", Value: "1"}}, Network: spec.NetworkHost,
				Resources: spec.Resources{CPU: "500m", Memory: "64Mi", Pids: 128}},
			check: func(t *testing.T, s oci.Settings) {
				want := oci.Resources{CPU: 0.5, MemoryBytes: 64 << 20, Pids: 128}
				if s.Resources != want || !s.NetworkHost || len(s.Env) != 1 || s.Env[0] != "A=1" {
					t.Errorf("got %+v", s)
				}
			},
		},
		{
			name: "mount options",
			in: spec.ContainerSpec{Mounts: []spec.Mount{
				{Type: spec.MountBind, Source: "data", Target: "/data", Options: []string{"ro"}},
				{Type: spec.MountTmpfs, Target: "/tmp", Options: []string{"size=16Mi"}},
			}},
			check: func(t *testing.T, s oci.Settings) {
				want := []oci.Mount{
					{Type: "bind", Source: "/etc/berth/manifests/data", Target: "/data", ReadOnly: true},
					{Type: "tmpfs", Target: "/tmp", SizeBytes: 16 << 20},
				}
				if diff := cmp.Diff(want, s.Mounts); diff != "" {
					t.Errorf("mounts (-want +got):\n%s", diff)
				}
			},
		},
		{
			name:    "unknown mount option",
			in:      spec.ContainerSpec{Mounts: []spec.Mount{{Type: spec.MountTmpfs, Target: "/tmp", Options: []string{"exec"}}}},
			wantErr: true,
		},
		{
			name:    "bad quantity",
			in:      spec.ContainerSpec{Resources: spec.Resources{Memory: "64Q"}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := containerSettings(obj, tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, got.Settings)
			}
		})
	}
}

func TestContainerHash_ChangesWithSpecOrDigest(t *testing.T) {
	t.Parallel()
	a := spec.ContainerInstanceHash("spec1", "sha256:a")
	for _, other := range []string{spec.ContainerInstanceHash("spec2", "sha256:a"), spec.ContainerInstanceHash("spec1", "sha256:b")} {
		if other == a {
			t.Errorf("hash did not change: %s", a)
		}
	}
	if spec.ContainerInstanceHash("spec1", "sha256:a") != a {
		t.Error("hash is not stable")
	}
}
