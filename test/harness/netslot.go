package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
