package network

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
)

// TestPlanFor: which plugins an attach runs for each kind of network and
// request, and the host rules berth owes the network instead.
func TestPlanFor(t *testing.T) {
	bridged, err := conflist(builtinCNIName, "berth0", "/ipam", Spec{Subnet: "10.87.0.0/16", IPMasq: true})
	if err != nil {
		t.Fatal(err)
	}
	noMasq, err := conflist("berth_default_back", "berth-x", "/ipam", Spec{Subnet: "10.89.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	macvlan, err := conflist("berth_default_mv", "", "/ipam", Spec{Subnet: "10.82.1.0/24", Driver: DriverMacvlan, Master: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	ipvlan, err := conflist("berth_default_iv", "", "/ipam", Spec{Subnet: "10.81.1.0/24", Driver: DriverIPVlan, Master: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	user := []byte(`{"cniVersion":"1.0.0","name":"mynet","plugins":[{"type":"bridge","bridge":"cni0","ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.22.0.0/16"}]]}},{"type":"portmap","capabilities":{"portMappings":true}},{"type":"firewall"},{"type":"tuning"}]}`)
	ports := []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}
	for _, tc := range []struct {
		name    string
		conf    []byte
		ports   []PortMapping
		plugins []string
		masq    bool // the bridge plugin still masquerades
		rules   *netRules
		sweep   bool
	}{
		{"built-in, no ports", bridged, nil, []string{"bridge"}, false,
			&netRules{cni: builtinCNIName, bridge: "berth0", subnet: "10.87.0.0/16", masq: true, forward: true}, false},
		{"built-in, ports", bridged, ports, []string{"bridge", "portmap"}, false,
			&netRules{cni: builtinCNIName, bridge: "berth0", subnet: "10.87.0.0/16", masq: true, forward: true}, true},
		{"declared without ipMasq", noMasq, nil, []string{"bridge"}, false,
			&netRules{cni: "berth_default_back", bridge: "berth-x", subnet: "10.89.1.0/24", forward: true}, false},
		{"macvlan", macvlan, nil, []string{"macvlan"}, false, nil, false},
		{"ipvlan", ipvlan, nil, []string{"ipvlan"}, false, nil, false},
		{"a user's conflist runs as written", user, nil, []string{"bridge", "portmap", "firewall", "tuning"}, true, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := libcni.NetworkConfFromBytes(tc.conf)
			if err != nil {
				t.Fatal(err)
			}
			p, err := planFor(list, Request{Ports: tc.ports})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			masq := false
			for _, pl := range p.list.Plugins {
				got = append(got, pl.Network.Type)
				var c map[string]any
				_ = json.Unmarshal(pl.Bytes, &c)
				if c["ipMasq"] == true {
					masq = true
				}
				if pl.Network.Type == "ipvlan" && (c["master"] != "eth1" || c["mode"] != "l2") {
					t.Errorf("ipvlan plugin: %v, want master eth1 mode l2", c)
				}
			}
			if !slices.Equal(got, tc.plugins) || masq != tc.masq {
				t.Errorf("plugins %v (ipMasq %v), want %v (ipMasq %v)", got, masq, tc.plugins, tc.masq)
			}
			switch {
			case (p.rules == nil) != (tc.rules == nil):
				t.Errorf("rules %+v, want %+v", p.rules, tc.rules)
			case p.rules != nil && *p.rules != *tc.rules:
				t.Errorf("rules %+v, want %+v", *p.rules, *tc.rules)
			}
			if s := sweepNeeded(p.list.Bytes, len(tc.ports) > 0); s != tc.sweep {
				t.Errorf("sweepNeeded = %v, want %v", s, tc.sweep)
			}
		})
	}
	// Ports on a network no plugin can publish them on are refused.
	list, _ := libcni.NetworkConfFromBytes(macvlan)
	if _, err := planFor(list, Request{Ports: ports}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "portmap") {
		t.Errorf("ports on macvlan: %v, want InvalidArgument naming portmap", err)
	}
}
