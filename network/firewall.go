package network

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// iptables runs iptables, waiting for the xtables lock as the plugins do,
// and returns its standard output: iptables-nft warns on stderr ("legacy
// tables present"), which is no rule.
func iptables(args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("iptables", append([]string{"-w", "5"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &cmdError{"iptables " + strings.Join(args, " "), stderr.Bytes(), err}
	}
	return out, nil
}

// cniChains are the chains the portmap and firewall plugins create once
// and never remove; berth removes them when they are empty (no CNI user
// on the host has a rule in them), with the jumps to them.
var cniChains = []struct{ table, chain string }{
	{"nat", "CNI-HOSTPORT-DNAT"},
	{"nat", "CNI-HOSTPORT-SETMARK"},
	{"nat", "CNI-HOSTPORT-MASQ"},
	{"filter", "CNI-FORWARD"},
	{"filter", "CNI-ADMIN"},
}

// cleanupFirewall removes the empty CNI chains once no container of this
// berth is attached. A chain holding any rule but a jump to another
// listed chain is someone's and stays.
func (m *Manager) cleanupFirewall() {
	if all, _ := m.List(); len(all) > 0 {
		return
	}
	// Not between another berthd's portmap creating a chain and its
	// first rule or jump (it holds the lock for its ADD).
	unlock := lockHostRules()
	defer unlock()
	listed := map[string]bool{}
	for _, c := range cniChains {
		listed[c.chain] = true
	}
	for _, c := range cniChains {
		out, err := iptables("-t", c.table, "-S", c.chain)
		if err != nil {
			continue // no such chain
		}
		empty := true
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 || f[0] == "-N" {
				continue
			}
			// The plugins' fixed rules (the masquerade mark, the jump to
			// CNI-ADMIN) are part of the set; a per-container chain's
			// jump or any other target is a user's.
			if t := target(f); listed[t] || t == "MASQUERADE" || t == "MARK" {
				continue
			}
			empty = false
		}
		if !empty {
			return // in use: leave the whole set, jumps included
		}
	}
	for _, c := range cniChains {
		if _, err := iptables("-t", c.table, "-S", c.chain); err != nil {
			continue
		}
		removeJumps(c.table, c.chain)
		_, _ = iptables("-t", c.table, "-F", c.chain)
	}
	for _, c := range cniChains {
		if _, err := iptables("-t", c.table, "-X", c.chain); err != nil {
			if _, serr := iptables("-t", c.table, "-S", c.chain); serr == nil {
				m.log.Warn("remove empty CNI chain", "table", c.table, "chain", c.chain, "err", err)
			}
		}
	}
}

// target is the -j of a rule split into fields.
func target(f []string) string {
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-j" {
			return f[i+1]
		}
	}
	return ""
}

// removeJumps deletes every rule of a table that jumps to chain.
func removeJumps(table, chain string) {
	out, err := iptables("-t", table, "-S")
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := splitRule(line)
		if len(f) < 2 || f[0] != "-A" || f[1] == chain || target(f) != chain {
			continue
		}
		args := append([]string{"-t", table, "-D"}, f[1:]...)
		_, _ = iptables(args...)
	}
}

// splitRule splits an iptables -S rule into arguments, honouring the
// double quotes iptables puts around comments and the backslash escapes
// inside them (a comment naming a network is `"name: \"berth\" ..."`).
func splitRule(s string) []string {
	var out []string
	var cur strings.Builder
	inq, esc, have := false, false, false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && inq:
			esc = true
		case r == '"':
			inq, have = !inq, true
		case r == ' ' && !inq:
			if cur.Len() > 0 || have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 || have {
		out = append(out, cur.String())
	}
	return out
}

// isolateChain holds the rules of isolated networks, in the mangle
// table's FORWARD chain, which no plugin touches, so the plugins' own
// ACCEPT rules in filter cannot come before it.
const isolateChain = "BERTH-ISOLATE"

// setIsolation adds (on) or removes the rules that keep a bridge's
// traffic from other berth bridges, in both directions. Idempotent.
func setIsolation(bridge string, on bool) error {
	unlock := lockHostRules()
	defer unlock()
	rules := [][]string{
		{"-i", bridge, "-o", bridge, "-j", "RETURN"},
		{"-i", bridge, "-o", "berth+", "-j", "DROP"},
		{"-i", "berth+", "-o", bridge, "-j", "DROP"},
	}
	if on {
		if _, err := iptables("-t", "mangle", "-S", isolateChain); err != nil {
			if _, err := iptables("-t", "mangle", "-N", isolateChain); err != nil {
				return err
			}
		}
		if _, err := iptables("-t", "mangle", "-C", "FORWARD", "-j", isolateChain); err != nil {
			if _, err := iptables("-t", "mangle", "-I", "FORWARD", "1", "-j", isolateChain); err != nil {
				return err
			}
		}
		for _, r := range rules {
			if _, err := iptables(append([]string{"-t", "mangle", "-C", isolateChain}, r...)...); err == nil {
				continue
			}
			if _, err := iptables(append([]string{"-t", "mangle", "-A", isolateChain}, r...)...); err != nil {
				return fmt.Errorf("isolate %s: %w", bridge, err)
			}
		}
		return nil
	}
	for _, r := range rules {
		for {
			if _, err := iptables(append([]string{"-t", "mangle", "-D", isolateChain}, r...)...); err != nil {
				break
			}
		}
	}
	out, err := iptables("-t", "mangle", "-S", isolateChain)
	if err == nil && strings.Count(string(out), "\n") <= 1 {
		_, _ = iptables("-t", "mangle", "-D", "FORWARD", "-j", isolateChain)
		_, _ = iptables("-t", "mangle", "-X", isolateChain)
	}
	return nil
}

// purgeRules removes what the plugins' DEL can leave of one attachment in
// the firewall: the bridge plugin skips its masquerade teardown when the
// container's interface is already gone (a DEL run again after one that
// failed half way, a namespace lost to a crash or reboot:
// containernetworking/plugins#810), and with iptables-nft its teardown
// can fail to delete the jump and then the chain (EBUSY). Rules are found
// by the comment the plugins put on them (name and container id) and, in
// CNI-FORWARD, by the container's addresses; the per-container chains
// they jump to are flushed and deleted. Idempotent; failures are logged.
func (m *Manager) purgeRules(a Attachment) {
	id := `id: \"` + key(a.Namespace, a.ID) + `\"`
	name := `name: \"` + a.CNIName + `\"`
	var addrs []string
	for _, ip := range a.IPs {
		if p, _, ok := strings.Cut(ip, "/"); ok {
			addrs = append(addrs, p+"/32")
		}
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := iptables("-t", table, "-S")
		if err != nil {
			continue
		}
		chains := map[string]bool{}
		var rules [][]string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			line := sc.Text()
			f := splitRule(line)
			if len(f) < 2 || f[0] != "-A" {
				continue
			}
			mine := strings.Contains(line, id) && strings.Contains(line, name)
			if !mine && f[1] == "CNI-FORWARD" {
				for i := 0; i+1 < len(f); i++ {
					if (f[i] == "-s" || f[i] == "-d") && slices.Contains(addrs, f[i+1]) {
						mine = true
					}
				}
			}
			if !mine {
				continue
			}
			rules = append(rules, f)
			if t := target(f); strings.HasPrefix(t, "CNI-") && !isSharedChain(t) {
				chains[t] = true
			}
		}
		for _, f := range rules {
			if _, err := iptables(append([]string{"-t", table, "-D"}, f[1:]...)...); err != nil {
				m.log.Warn("remove a container's firewall rule", "container", key(a.Namespace, a.ID), "err", err)
			}
		}
		for c := range chains {
			_, _ = iptables("-t", table, "-F", c)
			if _, err := iptables("-t", table, "-X", c); err != nil {
				m.log.Warn("remove a container's firewall chain", "container", key(a.Namespace, a.ID), "chain", c, "err", err)
			}
		}
	}
}

// isSharedChain reports whether a CNI chain is one every container's
// rules share (never removed for one container).
func isSharedChain(c string) bool {
	if strings.HasPrefix(c, "CNI-ISOLATION") {
		return true
	}
	for _, s := range cniChains {
		if s.chain == c {
			return true
		}
	}
	return false
}
