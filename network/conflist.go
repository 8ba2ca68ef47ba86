package network

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/containerd/errdefs"
)

// cniVersion is the version of the conflists berth writes: the newest that
// Debian bookworm's plugins (1.1.1) speak.
const cniVersion = "1.0.0"

// Drivers of a declared network.
const (
	DriverBridge  = "bridge"
	DriverMacvlan = "macvlan"
	DriverIPVlan  = "ipvlan"
)

// Spec is a network as berth declares it. The zero values of the optional
// fields mean: gateway the subnet's first address, no MTU (the kernel's),
// the whole subnet for addresses, driver bridge.
type Spec struct {
	Subnet  string
	Gateway string
	IPRange string
	IPMasq  bool
	Isolate bool
	MTU     int
	Driver  string
	Master  string
}

// Prefixes parses and checks the spec's addresses: the subnet, the range
// inside it and the gateway inside it and outside nothing reserved.
func (s Spec) Prefixes() (subnet, ipRange netip.Prefix, gw netip.Addr, err error) {
	subnet, err = netip.ParsePrefix(s.Subnet)
	if err != nil || !subnet.Addr().Is4() {
		return subnet, ipRange, gw, fmt.Errorf("subnet %q: want an IPv4 CIDR such as 10.89.1.0/24: %w", s.Subnet, errdefs.ErrInvalidArgument)
	}
	if subnet.Masked() != subnet {
		return subnet, ipRange, gw, fmt.Errorf("subnet %q: has host bits set (want %s): %w", s.Subnet, subnet.Masked(), errdefs.ErrInvalidArgument)
	}
	if subnet.Bits() > 30 {
		return subnet, ipRange, gw, fmt.Errorf("subnet %q: too small (at most /30): %w", s.Subnet, errdefs.ErrInvalidArgument)
	}
	ipRange = subnet
	if s.IPRange != "" {
		if ipRange, err = netip.ParsePrefix(s.IPRange); err != nil || ipRange.Masked() != ipRange || !subnet.Contains(ipRange.Addr()) || ipRange.Bits() < subnet.Bits() {
			return subnet, ipRange, gw, fmt.Errorf("ipRange %q: want a CIDR inside subnet %s: %w", s.IPRange, s.Subnet, errdefs.ErrInvalidArgument)
		}
	}
	gw = subnet.Addr().Next()
	if s.Gateway != "" {
		if gw, err = netip.ParseAddr(s.Gateway); err != nil || !subnet.Contains(gw) || gw == subnet.Addr() {
			return subnet, ipRange, gw, fmt.Errorf("gateway %q: want a host address inside subnet %s: %w", s.Gateway, s.Subnet, errdefs.ErrInvalidArgument)
		}
	}
	switch s.Driver {
	case "", DriverBridge:
	case DriverMacvlan, DriverIPVlan:
		if s.Master == "" {
			return subnet, ipRange, gw, fmt.Errorf("driver %s: needs master (the host interface): %w", s.Driver, errdefs.ErrInvalidArgument)
		}
	default:
		return subnet, ipRange, gw, fmt.Errorf("driver %q: want bridge, macvlan or ipvlan: %w", s.Driver, errdefs.ErrInvalidArgument)
	}
	if s.MTU < 0 || s.MTU > 65535 || (s.MTU != 0 && s.MTU < 576) {
		return subnet, ipRange, gw, fmt.Errorf("mtu %d: want 576..65535: %w", s.MTU, errdefs.ErrInvalidArgument)
	}
	return subnet, ipRange, gw, nil
}

// Overlaps reports whether two subnets share an address.
func Overlaps(a, b string) bool {
	pa, err1 := netip.ParsePrefix(a)
	pb, err2 := netip.ParsePrefix(b)
	return err1 == nil && err2 == nil && pa.Overlaps(pb)
}

// BridgeName is the Linux bridge of a declared network: "berth-" and a
// hash of its CNI name, within the kernel's 15 characters. The built-in
// network's bridge is configured (berth0 by default).
func BridgeName(cniName string) string {
	h := sha256.Sum256([]byte(cniName))
	return "berth-" + hex.EncodeToString(h[:])[:8]
}

// conflist is the CNI configuration of a network named cniName: its main
// plugin with host-local addresses stored under ipamDir, then portmap,
// firewall and tuning.
func conflist(cniName, bridge, ipamDir string, s Spec) ([]byte, error) {
	subnet, ipRange, gw, err := s.Prefixes()
	if err != nil {
		return nil, err
	}
	rng := map[string]any{"subnet": subnet.String(), "gateway": gw.String()}
	if ipRange != subnet {
		rng["rangeStart"] = firstHost(ipRange, gw).String()
		rng["rangeEnd"] = lastHost(ipRange).String()
	}
	ipam := map[string]any{
		"type":    "host-local",
		"ranges":  [][]any{{rng}},
		"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
		"dataDir": ipamDir,
	}
	var main map[string]any
	switch s.Driver {
	case "", DriverBridge:
		// hairpinMode lets a container reach itself through its own
		// published port; Debian's bridge 1.1.1 refuses it together with
		// promiscMode, so promiscMode stays off.
		main = map[string]any{"type": "bridge", "bridge": bridge, "isGateway": true,
			"ipMasq": s.IPMasq, "hairpinMode": true, "ipam": ipam}
	case DriverMacvlan:
		main = map[string]any{"type": "macvlan", "master": s.Master, "mode": "bridge", "ipam": ipam}
	case DriverIPVlan:
		main = map[string]any{"type": "ipvlan", "master": s.Master, "mode": "l2", "ipam": ipam}
	}
	if s.MTU > 0 {
		main["mtu"] = s.MTU
	}
	plugins := []any{main}
	if s.Driver == "" || s.Driver == DriverBridge {
		plugins = append(plugins,
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
			map[string]any{"type": "firewall", "backend": "iptables"})
	}
	plugins = append(plugins, map[string]any{"type": "tuning"})
	return json.MarshalIndent(map[string]any{"cniVersion": cniVersion, "name": cniName, "plugins": plugins}, "", "  ")
}

// firstHost is the first address of a range that is neither its network
// address nor the gateway.
func firstHost(p netip.Prefix, gw netip.Addr) netip.Addr {
	a := p.Addr()
	if a == p.Masked().Addr() {
		a = a.Next()
	}
	if a == gw {
		a = a.Next()
	}
	return a
}

// lastHost is the last address of a range below its broadcast address.
func lastHost(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= (1 << (32 - p.Bits())) - 1
	n--
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}
