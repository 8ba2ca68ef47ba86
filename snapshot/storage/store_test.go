package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"berth.dev/berth/snapshot"
)

// TestStore_Open_RepairsCrashLeftovers simulates crashes at each step of
// Create and Remove and checks that reopening restores a consistent state.
func TestStore_Open_RepairsCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(dir string, _ []uint64) error { return os.Mkdir(filepath.Join(dir, "fs"), 0o755) }
	kept, err := s.Create(ctx, snapshot.KindActive, "kept", "", nil, mk)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	sd := filepath.Join(root, "snapshots")
	// A removal whose transaction never committed: dir in the trash, metadata present.
	if err := os.Rename(filepath.Join(sd, "1"), filepath.Join(sd, "rm-1")); err != nil {
		t.Fatal(err)
	}
	// A create that never committed, before and after its rename; a removal that committed.
	for _, d := range []string{"new-123", "77", "rm-5"} {
		if err := os.MkdirAll(filepath.Join(sd, d, "fs"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err = Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ents, _ := os.ReadDir(sd)
	if len(ents) != 1 || ents[0].Name() != "1" || kept.ID != 1 {
		t.Errorf("snapshots dir after repair: %v, want only 1", ents)
	}
	if _, err := s.Stat(ctx, "kept"); err != nil {
		t.Errorf("stat kept: %v", err)
	}
	// The next id does not collide with a leftover.
	next, err := s.Create(ctx, snapshot.KindActive, "next", "", nil, mk)
	if err != nil || next.ID == 1 {
		t.Errorf("create after repair: %+v, %v", next, err)
	}
}
