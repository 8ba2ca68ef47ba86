package server

import (
	"strings"
	"testing"

	ctrapi "berth.dev/berth/api/containers/v1"
	"berth.dev/berth/network"
	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

// The API's settings go through the manifest's rules: ports through
// spec.Default, spec.ValidatePorts and node.NetworkFromSpec, mounts
// through oci.ParseMount. So a setting means the same from `berth run` as
// from a file, and is refused for the same reasons.
func TestSettingsFromAPI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		in      *ctrapi.Settings
		ports   []network.PortMapping
		wantErr string // a substring; "" for no error
	}{
		{name: "port defaults", in: &ctrapi.Settings{Network: "bridge", Ports: []*ctrapi.PortMapping{{ContainerPort: 80}}},
			ports: []network.PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}}},
		{name: "udp on an address", in: &ctrapi.Settings{Network: "bridge", Ports: []*ctrapi.PortMapping{{HostIp: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "UDP"}}},
			ports: []network.PortMapping{{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Protocol: "udp"}}},
		{name: "host port twice", in: &ctrapi.Settings{Network: "bridge", Ports: []*ctrapi.PortMapping{{HostPort: 8080, ContainerPort: 80}, {HostPort: 8080, ContainerPort: 81}}},
			wantErr: "published twice"},
		{name: "port out of range", in: &ctrapi.Settings{Network: "bridge", Ports: []*ctrapi.PortMapping{{HostPort: 70000, ContainerPort: 80}}},
			wantErr: "spec.ports[0].hostPort"},
		{name: "IPv6 host address", in: &ctrapi.Settings{Network: "bridge", Ports: []*ctrapi.PortMapping{{HostIp: "::1", ContainerPort: 80}}},
			wantErr: "not an IPv4 address"},
		{name: "ports without a bridged network", in: &ctrapi.Settings{Ports: []*ctrapi.PortMapping{{ContainerPort: 80}}},
			wantErr: "bridged network"},
		{name: "tmpfs size", in: &ctrapi.Settings{Mounts: []*ctrapi.Mount{{Type: "tmpfs", Target: "/tmp", Options: []string{"size=16Mi", "rw"}}}}},
		{name: "unknown mount option", in: &ctrapi.Settings{Mounts: []*ctrapi.Mount{{Type: "tmpfs", Target: "/tmp", Options: []string{"exec"}}}},
			wantErr: `"exec" is not supported`},
	} {
		s, err := settingsFromAPI(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: got %v, want InvalidArgument containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tc.ports != nil {
			if s.Network == nil {
				t.Errorf("%s: no network settings", tc.name)
			} else if diff := cmp.Diff(tc.ports, s.Network.Ports); diff != "" {
				t.Errorf("%s: ports (-want +got):\n%s", tc.name, diff)
			}
		}
		if tc.name == "tmpfs size" && (len(s.Mounts) != 1 || s.Mounts[0].SizeBytes != 16<<20) {
			t.Errorf("%s: mounts %+v, want one of 16 MiB", tc.name, s.Mounts)
		}
	}
}
