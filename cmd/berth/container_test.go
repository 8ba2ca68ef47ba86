package main

import (
	"strings"
	"testing"

	ctrapi "berth.dev/berth/api/containers/v1"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ip      string
		hp, cp  int32
		proto   string
		wantErr bool
	}{
		{in: "8080:80", hp: 8080, cp: 80, proto: "tcp"},
		{in: "127.0.0.1:8080:80/udp", ip: "127.0.0.1", hp: 8080, cp: 80, proto: "udp"},
		{in: "53/UDP", hp: 53, cp: 53, proto: "udp"},
		{in: "8080:80/sctp", wantErr: true},
		{in: "a:80", wantErr: true},
		{in: "0:80", wantErr: true},
		{in: "1:2:3:4", wantErr: true},
	} {
		p, err := parsePublish(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parsePublish(%q) = %v, want an error", tc.in, p)
			}
			continue
		}
		if err != nil || p.HostIp != tc.ip || p.HostPort != tc.hp || p.ContainerPort != tc.cp || p.Protocol != tc.proto {
			t.Errorf("parsePublish(%q) = %v, %v; want %s:%d:%d/%s", tc.in, p, err, tc.ip, tc.hp, tc.cp, tc.proto)
		}
	}
}

// --mount hands every option but type, source and target to berthd, so
// the options mean what they mean in a manifest (oci.ParseMount decides).
func TestParseMount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want *ctrapi.Mount
		bad  bool
	}{
		{in: "type=bind,source=/a,target=/b,ro", want: &ctrapi.Mount{Type: "bind", Source: "/a", Target: "/b", Options: []string{"ro"}}},
		{in: "src=/a,dst=/b,readonly=false", want: &ctrapi.Mount{Type: "bind", Source: "/a", Target: "/b", Options: []string{"rw"}}},
		{in: "type=bind,source=/a,target=/b,rw", want: &ctrapi.Mount{Type: "bind", Source: "/a", Target: "/b", Options: []string{"rw"}}},
		{in: "type=tmpfs,target=/tmp,size=16Mi", want: &ctrapi.Mount{Type: "tmpfs", Target: "/tmp", Options: []string{"size=16Mi"}}},
		{in: "type=tmpfs,destination=/tmp,tmpfs-size=1Gi", want: &ctrapi.Mount{Type: "tmpfs", Target: "/tmp", Options: []string{"size=1Gi"}}},
		{in: "type=tmpfs,target=/tmp,exec", want: &ctrapi.Mount{Type: "tmpfs", Target: "/tmp", Options: []string{"exec"}}}, // berthd refuses it, naming it
		{in: "type=tmpfs,source=x", bad: true},
		{in: "target=/b,ro=maybe", bad: true},
		{in: "target=/b,,ro", bad: true},
	} {
		got, err := parseMount(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: no error, got %+v", tc.in, got)
			}
			continue
		}
		if err != nil || got.Type != tc.want.Type || got.Source != tc.want.Source || got.Target != tc.want.Target ||
			strings.Join(got.Options, ",") != strings.Join(tc.want.Options, ",") {
			t.Errorf("%s: got %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
