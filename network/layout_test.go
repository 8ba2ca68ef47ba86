package network

import (
	"os"
	"path/filepath"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// TestMigrateLayout: the namespaces and records an older berthd kept
// under <state>/network move to <state>/.network with their records
// pointing there, the namespace still mounted; a namespace named
// "network"'s task bundles stay where they are.
func TestMigrateLayout(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	oldNS := filepath.Join(state, "network", "netns", "default.c1")
	if err := createNetNS(oldNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeNetNS(oldNS) })
	rec := filepath.Join(state, "network", "containers", "default.c1", "record.json")
	if err := writeFile(rec, []byte(`{"namespace":"default","id":"c1","network":"bridge","cniName":"berth","phase":"attached","netns":"`+oldNS+`"}`)); err != nil {
		t.Fatal(err)
	}
	// A bundle of container "web" in namespace "network".
	bundle := filepath.Join(state, "network", "web", "config.json")
	if err := writeFile(bundle, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{ConfDir: dir + "/net.d", Root: dir + "/root", State: state, Bridge: "berth-ut9", Subnet: "10.86.251.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	newNS := m.NetNSPath("default", "c1")
	t.Cleanup(func() { _ = removeNetNS(newNS) })
	if newNS != filepath.Join(state, ".network", "netns", "default.c1") {
		t.Errorf("NetNSPath = %s, want it under <state>/.network", newNS)
	}
	if !isNetNS(newNS) {
		t.Errorf("%s is no mounted namespace after the migration", newNS)
	}
	if _, err := os.Lstat(oldNS); !os.IsNotExist(err) {
		t.Errorf("old namespace file %s still there: %v", oldNS, err)
	}
	a, err := m.Get("default", "c1")
	if err != nil || a.NetNS != newNS {
		t.Errorf("record after the migration: netns %q (%v), want %s", a.NetNS, err, newNS)
	}
	if _, err := os.Stat(bundle); err != nil {
		t.Errorf("namespace network's bundle moved or removed: %v", err)
	}

	// A second start changes nothing; a bundle named "netns" of namespace
	// "network" is not taken for the old layout.
	other := filepath.Join(state, "network", "netns", "config.json")
	if err := writeFile(other, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{ConfDir: dir + "/net.d", Root: dir + "/root", State: state, Bridge: "berth-ut9", Subnet: "10.86.251.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("bundle netns of namespace network moved: %v", err)
	}
	if !isNetNS(newNS) {
		t.Errorf("%s unmounted by a second start", newNS)
	}
}
