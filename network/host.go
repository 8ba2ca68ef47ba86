package network

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// What a network with no container left leaves on the host is removed:
// its bridge, its IPAM directory, and the CNI chains that are empty. The
// plugins leave all three behind after the last DEL.

// emptied removes, once a's detach left its network with no container,
// what the network leaves on the host: its bridge, berth's rules for it,
// its IPAM directory and the CNI chains that are empty. It takes the
// network for writing, so no attach runs its plugins meanwhile; one that
// recorded itself before is seen and keeps the network as it is.
func (m *Manager) emptied(a Attachment) {
	if m.attached(a.CNIName) {
		return
	}
	st := m.net(a.CNIName)
	st.rw.Lock()
	defer st.rw.Unlock()
	if m.attached(a.CNIName) {
		return
	}
	st.ready = false
	m.removeNetworkHost(a.CNIName, bridgeOf(a.Conflist))
	m.cleanupFirewall()
}

// attached reports whether any container has a record on network cni.
func (m *Manager) attached(cni string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, _ := m.List()
	return slices.ContainsFunc(all, func(o Attachment) bool { return o.CNIName == cni })
}

// removeNetworkHost removes a network's bridge (one of berth's), berth's
// rules for it and its IPAM directory.
func (m *Manager) removeNetworkHost(cni, br string) {
	if br != "" && (strings.HasPrefix(br, "berth") || br == m.opts.Bridge) {
		if ownConflist(cni) {
			netRules{cni: cni, bridge: br}.remove()
		}
		if err := deleteLink(br); err != nil {
			m.log.Warn("remove bridge of an empty network", "bridge", br, "err", err)
		}
	}
	m.removeIPAMDir(cni)
}

// pruneNetworks, at start, removes what berth's networks with no
// container leave on the host (a crash between a network's last detach
// and that removal).
func (m *Manager) pruneNetworks() {
	nets, _ := m.Networks()
	for _, n := range nets {
		if n.Bridge == "" || m.attached(n.CNIName) {
			continue
		}
		st := m.net(n.CNIName)
		st.rw.Lock()
		st.ready = false
		m.removeNetworkHost(n.CNIName, n.Bridge)
		st.rw.Unlock()
	}
}

// bridgeOf is the bridge a conflist's bridge plugin names.
func bridgeOf(conf []byte) string {
	var c struct {
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
		} `json:"plugins"`
	}
	if err := jsonUnmarshal(conf, &c); err != nil {
		return ""
	}
	for _, p := range c.Plugins {
		if p.Type == "bridge" {
			return p.Bridge
		}
	}
	return ""
}

func deleteLink(name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); err != nil {
		return nil
	}
	out, err := exec.Command("ip", "link", "del", name).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("Cannot find device")) {
		return &cmdError{"ip link del " + name, out, err}
	}
	return nil
}

// removeIPAMDir removes host-local's directory of a network when it holds
// no lease, only its lock and its last-reserved marks.
func (m *Manager) removeIPAMDir(cniName string) {
	dir := filepath.Join(m.IPAMDir(), cniName)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			return
		}
	}
	_ = os.RemoveAll(dir)
}

// gc drops host-local leases that no known container holds (what a
// reboot or a lost cache left), in berth's IPAM directory only.
func (m *Manager) gc(ctx context.Context, known map[string]bool) {
	nets, err := os.ReadDir(m.IPAMDir())
	if err != nil {
		return
	}
	for _, n := range nets {
		dir := filepath.Join(m.IPAMDir(), n.Name())
		leases, _ := os.ReadDir(dir)
		for _, l := range leases {
			if l.Name() == "lock" || strings.HasPrefix(l.Name(), "last_reserved_ip") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, l.Name()))
			if err != nil {
				continue
			}
			id, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			id = strings.TrimSpace(id)
			if !known[id] {
				m.log.Info("releasing an address no container holds", "network", n.Name(), "ip", l.Name(), "container", id)
				_ = os.Remove(filepath.Join(dir, l.Name()))
			}
		}
		m.removeIPAMDir(n.Name())
	}
}

type cmdError struct {
	cmd string
	out []byte
	err error
}

func (e *cmdError) Error() string {
	return e.cmd + ": " + e.err.Error() + ": " + strings.TrimSpace(string(e.out))
}

func (e *cmdError) Unwrap() error { return e.err }
