package cri

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNetDev(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dev")
	body := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0
`
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got := netDev(p)
	if len(got) != 1 || got[0].iface != "eth0" {
		t.Fatalf("got %+v, want eth0 only (lo left out)", got)
	}
	v := got[0].v
	if diff := cmp.Diff([]uint64{5000, 40, 1, 2, 3000, 30, 3, 4}, []uint64{v[0], v[1], v[2], v[3], v[8], v[9], v[10], v[11]}); diff != "" {
		t.Errorf("rx/tx (-want +got):\n%s", diff)
	}
}

func TestCgroupFiles(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "memory", "pod", "c")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"memory.stat": "cache 10\nrss 20\nbad line\ntotal_inactive_file 5\n", "pids.max": "max\n", "cgroup.procs": "1\n22\n"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cg := cgroupFiles{root: dir, path: "/pod/c"}
	if diff := cmp.Diff(map[string]uint64{"cache": 10, "rss": 20, "total_inactive_file": 5}, cg.kv("memory", "memory.stat")); diff != "" {
		t.Errorf("kv (-want +got):\n%s", diff)
	}
	if v, ok := cg.uint("memory", "pids.max"); !ok || v != 0 {
		t.Errorf("pids.max max: got %d %v, want 0 (infinity) true", v, ok)
	}
	if _, ok := cg.uint("memory", "absent"); ok {
		t.Errorf("an absent file read as a value")
	}
	if diff := cmp.Diff([]int{1, 22}, cg.pids("memory", "cgroup.procs")); diff != "" {
		t.Errorf("pids (-want +got):\n%s", diff)
	}
}
