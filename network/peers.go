package network

import (
	"fmt"
	"path/filepath"
)

// writeFiles writes a container's hosts, resolv.conf and hostname.
func (m *Manager) writeFiles(a Attachment) error {
	dir := m.FilesDir(a.Namespace, a.ID)
	resolv := resolvConf(m.opts.ResolvConf, "/run/systemd/resolve/resolv.conf", a.Request.DNS)
	if err := writeInPlace(filepath.Join(dir, "resolv.conf"), resolv); err != nil {
		return fmt.Errorf("write resolv.conf of %s: %w", key(a.Namespace, a.ID), err)
	}
	if err := writeInPlace(filepath.Join(dir, "hostname"), []byte(hostnameOf(a.Request)+"\n")); err != nil {
		return err
	}
	all, _ := m.List()
	return m.writeHosts(a, peersOf(all, a))
}

func hostnameOf(r Request) string {
	if r.Hostname != "" {
		return r.Hostname
	}
	return r.ID
}

// selfNames are the names a container answers to: its hostname and its
// name (the container id).
func selfNames(r Request) []string {
	names := []string{hostnameOf(r)}
	if r.ID != names[0] {
		names = append(names, r.ID)
	}
	return names
}

func (m *Manager) writeHosts(a Attachment, peers []peer) error {
	self := peer{IP: a.IP(), Names: selfNames(a.Request)}
	path := filepath.Join(m.FilesDir(a.Namespace, a.ID), "hosts")
	if err := writeInPlace(path, hostsFile(self, peers, a.Request.Hosts)); err != nil {
		return fmt.Errorf("write hosts of %s: %w", key(a.Namespace, a.ID), err)
	}
	return nil
}

// peersOf lists the attached containers of self's network other than
// self. Names resolve within a berth namespace: a peer in another
// namespace on the built-in network is not named.
func peersOf(all []Attachment, self Attachment) []peer {
	var out []peer
	for _, a := range all {
		if a.CNIName != self.CNIName || a.Phase != phaseAttached || a.Namespace != self.Namespace || a.ID == self.ID || a.IP() == "" {
			continue
		}
		out = append(out, peer{IP: a.IP(), Names: selfNames(a.Request)})
	}
	return out
}

// refreshPeers rewrites the hosts file of every container attached to a
// network, after one came or went. Failures are logged: a stale hosts
// file is a name that resolves late, never a reason to fail an attach.
func (m *Manager) refreshPeers(cniName, except string) {
	all, _ := m.List()
	for _, a := range all {
		if a.CNIName != cniName || a.Phase != phaseAttached || key(a.Namespace, a.ID) == except {
			continue
		}
		if err := m.writeHosts(a, peersOf(all, a)); err != nil {
			m.log.Warn("refresh hosts file", "container", key(a.Namespace, a.ID), "err", err)
		}
	}
}
