package harness

import (
	"fmt"
	"os"
	"path/filepath"
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
