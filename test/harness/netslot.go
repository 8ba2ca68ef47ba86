package harness

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// netSlots is how many daemons may run on one host at once, each with its
// own built-in bridge berth-e<N> and subnet 10.86.<N>.0/24. 10.86.250.0/24
// and up are left to the network package's unit tests.
const netSlots = 200

// takeNetSlot locks the first free slot for the test's lifetime: a flock on
// /tmp/berth-e2e-net-<N>.lock, held by this process until t's cleanup (or
// its exit), so test processes running at once on the host (several
// packages, several people) never share a bridge or an address range.
func takeNetSlot(t testing.TB) (int, error) {
	for n := 1; n <= netSlots; n++ {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("berth-e2e-net-%d.lock", n))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return 0, fmt.Errorf("network slot lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		t.Cleanup(func() { f.Close() })
		return n, nil
	}
	return 0, fmt.Errorf("no free network slot of %d (/tmp/berth-e2e-net-*.lock all held)", netSlots)
}

// removeBridges removes what a failed test can leave of its daemon's
// networks: the built-in bridge (the daemon's own name) and the bridges
// of the conflists in its CNI configuration directory, with the isolation
// rules naming them.
func removeBridges(builtin, confDir string) []error {
	bridges := []string{builtin}
	files, _ := filepath.Glob(filepath.Join(confDir, "berth_*.conflist"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var c struct {
			Plugins []struct {
				Bridge string `json:"bridge"`
			} `json:"plugins"`
		}
		if json.Unmarshal(b, &c) == nil {
			for _, p := range c.Plugins {
				if p.Bridge != "" {
					bridges = append(bridges, p.Bridge)
				}
			}
		}
	}
	var errs []error
	for _, br := range bridges {
		if out, err := exec.Command("iptables", "-w", "5", "-t", "mangle", "-S", "BERTH-ISOLATE").Output(); err == nil {
			for _, l := range strings.Split(string(out), "\n") {
				if f := strings.Fields(l); len(f) > 2 && f[0] == "-A" && slices.Contains(f, br) {
					_ = exec.Command("iptables", append([]string{"-w", "5", "-t", "mangle", "-D"}, f[1:]...)...).Run()
				}
			}
		}
		if _, err := os.Stat("/sys/class/net/" + br); err != nil {
			continue
		}
		if out, err := exec.Command("ip", "link", "del", br).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("remove bridge %s: %v: %s", br, err, out))
		}
	}
	return errs
}

// removeFirewall deletes the iptables rules that name an address in one
// of subnets (the daemon's networks), and the per-container chains they
// jump to. A test that ends with bridged containers running leaves them:
// its daemon stops without a CNI DEL (containers outlive berthd by
// design) and the cleanup removes the containers behind CNI's back.
// Rules are deleted by number, last first, so the quoting of comments in
// `iptables -S` output never has to be parsed back.
func removeFirewall(subnets []netip.Prefix) {
	// Deleting by number is safe only while no berth changes these
	// chains: berthds hold this lock while they change berth's own
	// (network.lockHostRules) and portmap's shared ones.
	if f, err := os.OpenFile("/run/berth-iptables.lock", os.O_CREATE|os.O_RDWR, 0o600); err == nil {
		defer f.Close()
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX) == nil {
			defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
	}
	ipRe := regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)
	ours := func(line string) bool {
		for _, s := range ipRe.FindAllString(line, -1) {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			for _, p := range subnets {
				if p.Contains(a) {
					return true
				}
			}
		}
		return false
	}
	for _, table := range []string{"nat", "filter"} {
		out, err := exec.Command("iptables", "-w", "5", "-t", table, "-S").Output()
		if err != nil {
			continue
		}
		type rule struct {
			chain string
			n     int
		}
		lines := strings.Split(string(out), "\n")
		// Per-container chains holding one of our addresses (portmap's
		// CNI-DN-… hold the DNAT target), then every rule that names an
		// address of ours or jumps to such a chain.
		chains := map[string]bool{}
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" && perContainerChain(f[1]) && ours(l) {
				chains[f[1]] = true
			}
		}
		var doomed []rule
		count := map[string]int{}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "-A" {
				continue
			}
			count[f[1]]++
			jump := ""
			if i := slices.Index(f, "-j"); i >= 0 && i+1 < len(f) {
				jump = f[i+1]
			}
			if !ours(l) && !chains[jump] {
				continue
			}
			doomed = append(doomed, rule{f[1], count[f[1]]})
			if perContainerChain(jump) {
				chains[jump] = true
			}
		}
		for i := len(doomed) - 1; i >= 0; i-- {
			_ = exec.Command("iptables", "-w", "5", "-t", table, "-D", doomed[i].chain, fmt.Sprint(doomed[i].n)).Run()
		}
		for c := range chains {
			_ = exec.Command("iptables", "-w", "5", "-t", table, "-F", c).Run()
			_ = exec.Command("iptables", "-w", "5", "-t", table, "-X", c).Run()
		}
	}
}

// perContainerChain: the bridge plugin's CNI-<hash> and portmap's
// CNI-DN-<hash> chains belong to one container; the shared ones
// (CNI-FORWARD, CNI-HOSTPORT-*, CNI-ADMIN) stay.
func perContainerChain(c string) bool {
	return strings.HasPrefix(c, "CNI-") && !strings.HasPrefix(c, "CNI-HOSTPORT-") && c != "CNI-FORWARD" && c != "CNI-ADMIN"
}

// networkSubnets are the daemon's built-in subnet and those of the
// conflists in its CNI configuration directory.
func networkSubnets(builtin, confDir string) []netip.Prefix {
	var out []netip.Prefix
	if p, err := netip.ParsePrefix(builtin); err == nil {
		out = append(out, p)
	}
	files, _ := filepath.Glob(filepath.Join(confDir, "*.conflist"))
	re := regexp.MustCompile(`"subnet"\s*:\s*"([^"]+)"`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			if p, err := netip.ParsePrefix(string(m[1])); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}
