package spec

import (
	"fmt"
	"net/netip"
	"strings"
)

// network checks a Network's addresses: each is well formed, the range
// and the gateway lie inside the subnet. Overlaps with other networks are
// the controller's to find: they depend on what else is declared.
func (v *validator) network(s NetworkSpec) {
	switch NetworkMode(v.o.Metadata.Name) {
	case NetworkBridge, NetworkHost, NetworkNone:
		v.add("metadata.name", "%q is a built-in network mode; a Network needs another name", v.o.Metadata.Name)
	}
	subnet, err := netip.ParsePrefix(s.Subnet)
	switch {
	case s.Subnet == "":
		v.add("spec.subnet", "missing (an IPv4 CIDR such as 10.89.1.0/24)")
	case err != nil || !subnet.Addr().Is4():
		v.add("spec.subnet", "%q is not an IPv4 CIDR", truncate(s.Subnet, 80))
	case subnet.Masked() != subnet:
		v.add("spec.subnet", "%q has host bits set (want %s)", s.Subnet, subnet.Masked())
	case subnet.Bits() > 30:
		v.add("spec.subnet", "%q is too small (at most /30)", s.Subnet)
	}
	ok := err == nil && subnet.Masked() == subnet
	if s.Gateway != "" {
		gw, err := netip.ParseAddr(s.Gateway)
		if err != nil || !gw.Is4() {
			v.add("spec.gateway", "%q is not an IPv4 address", truncate(s.Gateway, 80))
		} else if ok && (!subnet.Contains(gw) || gw == subnet.Addr()) {
			v.add("spec.gateway", "%s is not a host address of subnet %s", s.Gateway, s.Subnet)
		}
	}
	if s.IPRange != "" {
		r, err := netip.ParsePrefix(s.IPRange)
		if err != nil || r.Masked() != r {
			v.add("spec.ipRange", "%q is not a CIDR", truncate(s.IPRange, 80))
		} else if ok && (!subnet.Contains(r.Addr()) || r.Bits() < subnet.Bits()) {
			v.add("spec.ipRange", "%s is not inside subnet %s", s.IPRange, s.Subnet)
		}
	}
	if s.MTU != 0 && (s.MTU < 576 || s.MTU > 65535) {
		v.add("spec.mtu", "%d is not 576..65535", s.MTU)
	}
	switch s.Driver {
	case "", "bridge":
		if s.Master != "" {
			v.add("spec.master", "only for driver macvlan or ipvlan")
		}
	case "macvlan", "ipvlan":
		if s.Master == "" {
			v.add("spec.master", "missing (driver %s needs the host interface)", s.Driver)
		}
	default:
		v.add("spec.driver", "%q is not one of bridge, macvlan, ipvlan", truncate(s.Driver, 80))
	}
	if s.Master != "" && (len(s.Master) > 15 || strings.ContainsAny(s.Master, "/ \x00")) {
		v.add("spec.master", "%q is not an interface name", truncate(s.Master, 80))
	}
}

// ValidatePorts checks ports published on network by the rule a
// manifest's spec.ports follow (ranges, protocol, an IPv4 host address,
// no host port twice), so `berth run -p` is refused for what a file
// would be refused for.
func ValidatePorts(network NetworkMode, ports []Port) error {
	v := &validator{}
	v.networkOptions(ContainerSpec{Network: network, Ports: ports})
	return v.errs.orNil()
}

// networkOptions checks a Container's ports, dns and hosts.
func (v *validator) networkOptions(s ContainerSpec) {
	if len(s.Ports) > 0 && !s.Network.Bridged() {
		v.add("spec.ports", "need a bridged network (spec.network is %q)", s.Network)
	}
	seen := map[string]bool{}
	for i, p := range s.Ports {
		f := field("spec.ports", i)
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			v.add(f+".containerPort", "%d is not 1..65535", p.ContainerPort)
		}
		if p.HostPort < 1 || p.HostPort > 65535 {
			v.add(f+".hostPort", "%d is not 1..65535", p.HostPort)
		}
		if p.Protocol != ProtocolTCP && p.Protocol != ProtocolUDP {
			v.add(f+".protocol", "%q is not one of tcp, udp", truncate(p.Protocol, 80))
		}
		if p.HostIP != "" {
			if a, err := netip.ParseAddr(p.HostIP); err != nil || !a.Is4() {
				v.add(f+".hostIP", "%q is not an IPv4 address", truncate(p.HostIP, 80))
			}
		}
		k := fmt.Sprintf("%s/%d/%s", p.HostIP, p.HostPort, p.Protocol)
		if seen[k] {
			v.add(f+".hostPort", "%d/%s is published twice", p.HostPort, p.Protocol)
		}
		seen[k] = true
	}
	if s.DNS != nil {
		for i, srv := range s.DNS.Servers {
			if _, err := netip.ParseAddr(srv); err != nil {
				v.add(field("spec.dns.servers", i), "%q is not an IP address", truncate(srv, 80))
			}
		}
		for i, d := range s.DNS.Searches {
			if len(d) > maxDNSSubdomain || !dnsSubdomainRE.MatchString(strings.TrimSuffix(d, ".")) {
				v.add(field("spec.dns.searches", i), "%q is not a domain", truncate(d, 80))
			}
		}
		for i, o := range s.DNS.Options {
			if o == "" || strings.ContainsAny(o, " \t\n\x00") {
				v.add(field("spec.dns.options", i), "%q is not a resolver option", truncate(o, 80))
			}
		}
	}
	for i, h := range s.Hosts {
		f := field("spec.hosts", i)
		if _, err := netip.ParseAddr(h.IP); err != nil {
			v.add(f+".ip", "%q is not an IP address", truncate(h.IP, 80))
		}
		if len(h.Hostnames) == 0 {
			v.add(f+".hostnames", "missing")
		}
		for j, n := range h.Hostnames {
			if len(n) > maxDNSSubdomain || !dnsSubdomainRE.MatchString(strings.ToLower(n)) {
				v.add(field(f+".hostnames", j), "%q is not a host name", truncate(n, 80))
			}
		}
	}
}
