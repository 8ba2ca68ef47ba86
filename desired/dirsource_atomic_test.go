package desired

import (
	"path/filepath"
	"sync"
	"testing"
)

// In atomic mode the directory is handed over whole: the store gets
// nothing per file, the hook gets every file's objects (or the error of a
// broken one), and the first read is marked First.
func TestDirSource_Atomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), taskYAML("a"))
	write(t, filepath.Join(dir, "b.yaml"), taskYAML("b1", "b2"))
	var mu sync.Mutex
	var got []AtomicSet
	sets := func() []AtomicSet {
		mu.Lock()
		defer mu.Unlock()
		return append([]AtomicSet(nil), got...)
	}
	s, _ := startDir(t, dir, DirOptions{Atomic: func(a AtomicSet) {
		mu.Lock()
		got = append(got, a)
		mu.Unlock()
	}})
	waitFor(t, "the first set", func() bool { return len(sets()) == 1 })
	first := sets()[0]
	if !first.First || first.Err != nil || len(first.Objects) != 3 || first.Revision.Hash == "" {
		t.Fatalf("first set: %+v", first)
	}
	if !s.Synced() {
		t.Error("not synced after the first read")
	}
	if n := len(s.List(Filter{})); n != 0 {
		t.Errorf("the store got %d objects from an atomic directory", n)
	}
	// A broken file: the set comes with its error.
	write(t, filepath.Join(dir, "b.yaml"), "kind: [broken")
	waitFor(t, "the broken set", func() bool { return len(sets()) == 2 })
	if b := sets()[1]; b.Err == nil || b.First {
		t.Errorf("broken set: %+v", b)
	}
	// Mended: the whole set again, a new revision hash.
	write(t, filepath.Join(dir, "b.yaml"), taskYAML("b1"))
	waitFor(t, "the mended set", func() bool { return len(sets()) == 3 })
	if m := sets()[2]; m.Err != nil || len(m.Objects) != 2 || m.Revision.Hash == first.Revision.Hash {
		t.Errorf("mended set: %+v", m)
	}
}
