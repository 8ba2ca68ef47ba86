package network

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"
)

// Attaching a container to one of berth's own networks runs only the
// plugins that do something for it. The conflist berth writes is the
// whole standard chain (bridge with ipMasq, portmap, firewall, tuning), so
// any CNI tool can use it; what the bridge plugin's ipMasq and the
// firewall plugin do per container (a chain of three rules and a jump for
// each, and two CNI-FORWARD rules, some fifteen iptables-nft runs) berth
// does once per network instead, as one rule per subnet (netRules),
// set up with the network's first container and removed with its last:
//
//   - bridge runs with ipMasq off; berth's BERTH-POSTROUTING masquerades
//     the subnet;
//   - firewall is dropped; berth's BERTH-FORWARD accepts the bridge's
//     traffic as the plugin's per-address rules did;
//   - portmap runs only for a container that publishes ports;
//   - tuning is dropped when it has nothing to set.
//
// A user's conflist (any other name) runs as it is.

// plan is what an attach runs: the plugin list and the per-network host
// rules it relies on (nil when it relies on none).
type plan struct {
	list  *libcni.NetworkConfigList
	rules *netRules
}

// ownConflist reports whether a conflist is one berth wrote.
func ownConflist(name string) bool {
	return name == builtinCNIName || strings.HasPrefix(name, "berth_")
}

// planFor is the plugin list an attach of req runs for list.
func planFor(list *libcni.NetworkConfigList, req Request) (plan, error) {
	if len(req.Ports) > 0 && !slices.ContainsFunc(list.Plugins, func(p *libcni.PluginConfig) bool { return p.Network.Capabilities["portMappings"] }) {
		// No plugin would publish them (macvlan, ipvlan, a user's
		// conflist without portmap): said, not ignored.
		return plan{}, fmt.Errorf("network %s has no plugin that publishes ports (portmap): the container cannot have ports: %w", list.Name, errdefs.ErrInvalidArgument)
	}
	if !ownConflist(list.Name) {
		return plan{list: list}, nil
	}
	confs := make([]map[string]any, len(list.Plugins))
	var rules *netRules
	for i, p := range list.Plugins {
		if err := json.Unmarshal(p.Bytes, &confs[i]); err != nil {
			return plan{}, fmt.Errorf("network %s: plugin %s: %w", list.Name, p.Network.Type, err)
		}
		if c := confs[i]; p.Network.Type == "bridge" && rules == nil {
			br, _ := c["bridge"].(string)
			if subnet := ipamSubnet(c); br != "" && subnet != "" {
				masq, _ := c["ipMasq"].(bool)
				rules = &netRules{cni: list.Name, bridge: br, subnet: subnet, masq: masq}
			}
		}
	}
	var plugins []map[string]any
	for i, p := range list.Plugins {
		c := confs[i]
		switch p.Network.Type {
		case "bridge":
			if rules != nil {
				c["ipMasq"] = false
			}
		case "firewall":
			if rules != nil {
				rules.forward = true
				continue
			}
		case "portmap":
			if len(req.Ports) == 0 {
				continue
			}
		case "tuning":
			if idle(c) {
				continue
			}
		}
		plugins = append(plugins, c)
	}
	if len(plugins) == 0 {
		return plan{list: list}, nil
	}
	b, err := json.Marshal(map[string]any{"cniVersion": list.CNIVersion, "name": list.Name, "plugins": plugins})
	if err != nil {
		return plan{}, err
	}
	l, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		return plan{}, fmt.Errorf("network %s: the plugins to run: %w", list.Name, err)
	}
	return plan{list: l, rules: rules}, nil
}

// ipamSubnet is the first range's subnet of a plugin's host-local IPAM.
func ipamSubnet(c map[string]any) string {
	ipam, _ := c["ipam"].(map[string]any)
	ranges, _ := ipam["ranges"].([]any)
	if len(ranges) == 0 {
		return ""
	}
	set, _ := ranges[0].([]any)
	if len(set) == 0 {
		return ""
	}
	r, _ := set[0].(map[string]any)
	s, _ := r["subnet"].(string)
	return s
}

// idle reports whether a tuning plugin's configuration sets nothing.
func idle(c map[string]any) bool {
	for k := range c {
		switch k {
		case "type", "name", "cniVersion", "capabilities":
		default:
			return false
		}
	}
	return true
}

// sweepNeeded reports whether a detach of an attachment added with conf
// must look for per-container firewall rules the plugins may leave (see
// purgeRules): only the bridge plugin's ipMasq, the firewall plugin and
// portmap with ports make any. An attachment with no stored conflist (a
// crash before it was recorded) is swept.
func sweepNeeded(conf []byte, ports bool) bool {
	if len(conf) == 0 {
		return true
	}
	var c struct {
		Plugins []struct {
			Type   string `json:"type"`
			IPMasq bool   `json:"ipMasq"`
		} `json:"plugins"`
	}
	if json.Unmarshal(conf, &c) != nil {
		return true
	}
	for _, p := range c.Plugins {
		switch {
		case p.Type == "bridge" && p.IPMasq, p.Type == "firewall", p.Type == "portmap" && ports:
			return true
		case !slices.Contains([]string{"bridge", "portmap", "tuning", "macvlan", "ipvlan"}, p.Type):
			return true // a plugin berth does not know what it leaves
		}
	}
	return false
}

// netRules are the host rules one bridge network needs, in chains of
// berth's own, each rule commented with the bridge (unique per berthd:
// two berthds on a host have different bridges) so they are found again.
type netRules struct {
	cni, bridge, subnet string
	masq, forward       bool
}

const (
	postroutingChain = "BERTH-POSTROUTING" // nat
	forwardChain     = "BERTH-FORWARD"     // filter
)

// tag is what every comment of the network's rules starts with; the
// rules of one subnet go on with it (a changed subnet's rules are added
// beside the old ones while containers of both are attached, and all go
// with the network's last container).
func (r netRules) tag() string { return "berth network " + r.cni + " bridge " + r.bridge + " " }

func (r netRules) subnetTag() string { return r.tag() + "subnet " + r.subnet + ":" }

// rule is one host rule: its comment (unique, which is how it is found)
// and its matches and target.
type rule struct {
	comment string
	args    []string
}

func (x rule) spec() []string {
	return append(append([]string(nil), x.args[:len(x.args)-2]...), "-m", "comment", "--comment", x.comment, x.args[len(x.args)-2], x.args[len(x.args)-1])
}

// rules are the rules of the network, per table.
func (r netRules) rules() (nat, filter []rule) {
	if r.masq {
		// Traffic within the subnet is not masqueraded (RETURN, so
		// POSTROUTING's other rules, portmap's hairpin masquerade among
		// them, still see it); the rest leaving the subnet is, as the
		// bridge plugin's per-container chain does.
		nat = append(nat,
			rule{r.subnetTag() + " within the subnet", []string{"-s", r.subnet, "-d", r.subnet, "-j", "RETURN"}},
			rule{r.subnetTag() + " masquerade", []string{"-s", r.subnet, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE"}})
	}
	if r.forward {
		// What the firewall plugin accepts per address, for the subnet:
		// replies to the containers and what they send; and connections
		// DNATed to them (published ports), so they work under a FORWARD
		// policy of DROP.
		filter = append(filter,
			rule{r.subnetTag() + " replies and published ports", []string{"-o", r.bridge, "-d", r.subnet, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "ACCEPT"}},
			rule{r.subnetTag() + " from the containers", []string{"-i", r.bridge, "-s", r.subnet, "-j", "ACCEPT"}})
	}
	return nat, filter
}

// ensure adds the network's rules that are missing, their chains and the
// jumps to them. Idempotent: two iptables runs when all is in place.
func (r netRules) ensure() error {
	unlock := lockHostRules()
	defer unlock()
	nat, filter := r.rules()
	if err := ensureChainRules("nat", postroutingChain, []string{"-A", "POSTROUTING"}, nat); err != nil {
		return fmt.Errorf("network %s: masquerade: %w", r.cni, err)
	}
	if err := ensureChainRules("filter", forwardChain, []string{"-I", "FORWARD", "1"}, filter); err != nil {
		return fmt.Errorf("network %s: forward rules: %w", r.cni, err)
	}
	return nil
}

func ensureChainRules(table, chain string, jump []string, rules []rule) error {
	if len(rules) == 0 {
		return nil
	}
	out, err := iptables("-t", table, "-S", chain)
	if err != nil {
		if _, err := iptables("-t", table, "-N", chain); err != nil {
			return err
		}
		out = nil
	}
	if _, err := iptables("-t", table, "-C", jump[1], "-j", chain); err != nil {
		if _, err := iptables(append(append([]string{"-t", table}, jump...), "-j", chain)...); err != nil {
			return err
		}
	}
	for _, x := range rules {
		if bytes.Contains(out, []byte(`"`+x.comment+`"`)) {
			continue
		}
		if _, err := iptables(append([]string{"-t", table, "-A", chain}, x.spec()...)...); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes every rule of the network's bridge in berth's chains,
// and the chains (with their jumps) once empty. Idempotent.
func (r netRules) remove() {
	unlock := lockHostRules()
	defer unlock()
	removeTagged("nat", postroutingChain, "POSTROUTING", r.tag())
	removeTagged("filter", forwardChain, "FORWARD", r.tag())
}

func removeTagged(table, chain, from, tag string) {
	out, err := iptables("-t", table, "-S", chain)
	if err != nil {
		return // no chain
	}
	left := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := splitRule(sc.Text())
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		if !strings.Contains(sc.Text(), `"`+tag) {
			left++
			continue
		}
		_, _ = iptables(append([]string{"-t", table, "-D"}, f[1:]...)...)
	}
	if left == 0 {
		for {
			if _, err := iptables("-t", table, "-D", from, "-j", chain); err != nil {
				break
			}
		}
		_, _ = iptables("-t", table, "-X", chain)
	}
}

// hostRulesMu and hostRulesLockFile serialise changes to berth's shared
// chains (BERTH-POSTROUTING, BERTH-FORWARD, BERTH-ISOLATE), within this
// process and with other berthds on the host: one network's removal of
// a chain it left empty must not race another's adding its first rule.
// iptables' own lock covers one run only.
var hostRulesMu sync.Mutex

const hostRulesLockFile = "/run/berth-iptables.lock"

func lockHostRules() (unlock func()) {
	hostRulesMu.Lock()
	f, err := os.OpenFile(hostRulesLockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			f = nil
		}
	} else {
		f = nil // no /run: this process's lock only
	}
	return func() {
		if f != nil {
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
			f.Close()
		}
		hostRulesMu.Unlock()
	}
}
