package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// migrateLayout moves what an older berthd kept under <state>/network
// (netns/ and containers/) to <state>/.network, and points the records'
// namespace paths at the new place. Running containers are undisturbed: a
// renamed directory keeps the namespace mounts under it, and the files
// bind-mounted into containers keep their inodes. A crash half way is
// finished at the next start (each step is done again only where it is
// still needed). An entry of <state>/network that is not berth's (a task
// bundle of a namespace named "network") is left where it is.
func (m *Manager) migrateLayout() error {
	old := filepath.Join(m.opts.State, "network")
	moved := false
	for _, sub := range []string{"netns", "containers"} {
		src, dst := filepath.Join(old, sub), filepath.Join(m.opts.State, stateDirName, sub)
		if !isOldNetworkDir(src) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return fmt.Errorf("network: migrate %s: %w", src, err)
		}
		if err := os.Rename(src, dst); err == nil {
			moved = true
			continue
		} else if !errors.Is(err, os.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
			return fmt.Errorf("network: migrate %s to %s: %w", src, dst, err)
		}
		// dst exists (a crash half way, or a berthd of the new layout
		// ran meanwhile): move entry by entry.
		ents, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("network: migrate %s: %w", src, err)
		}
		for _, e := range ents {
			if err := moveEntry(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return fmt.Errorf("network: migrate %s: %w", src, err)
			}
		}
		_ = os.Remove(src)
		moved = true
	}
	if moved {
		m.log.Info("moved the network state to its new place", "from", old, "to", filepath.Join(m.opts.State, stateDirName))
	}
	_ = os.Remove(old) // only when empty: a namespace "network" may be there
	// Records name their namespace file by its absolute path.
	ents, _ := os.ReadDir(m.containersDir())
	for _, e := range ents {
		ns, id, ok := strings.Cut(e.Name(), ".")
		if !ok {
			continue
		}
		a, err := m.readRecord(ns, id)
		if err != nil {
			continue
		}
		want := filepath.Join(m.netnsDir(), e.Name())
		if a.NetNS == want || a.NetNS != filepath.Join(old, "netns", e.Name()) {
			continue
		}
		a.NetNS = want
		if err := m.writeRecord(a); err != nil {
			return fmt.Errorf("network: migrate record of %s: %w", e.Name(), err)
		}
	}
	return nil
}

// isOldNetworkDir reports whether dir is one of the old layout's
// directories rather than a task bundle (which has a config.json or a
// rootfs) of a container named "netns" or "containers".
func isOldNetworkDir(dir string) bool {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return false
	}
	for _, f := range []string{"config.json", "rootfs", "shim.pid"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return false
		}
	}
	return true
}

// moveEntry moves one namespace file or record directory. A namespace
// file is a mount point, which rename refuses (EBUSY): the namespace is
// bind-mounted at the new path and unmounted from the old.
func moveEntry(src, dst string) error {
	if !isNetNS(src) {
		if _, err := os.Lstat(dst); err == nil {
			return os.RemoveAll(src) // the new place already has it
		}
		return os.Rename(src, dst)
	}
	if !isNetNS(dst) {
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return err
		}
		f.Close()
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount %s on %s: %w", src, dst, err)
		}
	}
	return removeNetNS(src)
}
