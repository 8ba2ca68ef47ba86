package main

import "testing"

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
