package client_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	shimapi "berth.dev/berth/api/shim/v1"
)

// maxShimRSS guards against regressions; the goal is 4 MiB, which a
// Go process with ttrpc and protobuf does not reach (see the report in
// package shim's doc).
const maxShimRSS = 12 << 20

func TestShim_Memory(t *testing.T) {
	e := setup(t)
	id := "memory"
	c := e.start(t, id, e.bundle(t, id, []string{"sleep", "60"}), nil)
	ctx := context.Background()
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	t.Logf("berth-shim pid %d with a running sleep container, after Start: VmRSS %d KiB (%s)", c.Pid(), vmRSS(t, c.Pid())>>10, rssSplit(c.Pid()))
	for range 20 {
		if _, err := c.State(ctx, &shimapi.StateRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Stats(ctx, &shimapi.StatsRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
	}
	rss := vmRSS(t, c.Pid())
	t.Logf("berth-shim pid %d after 20 State and Stats calls: VmRSS %d KiB (%s)", c.Pid(), rss>>10, rssSplit(c.Pid()))
	if rss > maxShimRSS {
		t.Errorf("shim RSS %d KiB, want <= %d KiB", rss>>10, maxShimRSS>>10)
	}
}

func rssSplit(pid int) string {
	var parts []string
	for _, l := range strings.Split(readFile(fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if strings.HasPrefix(l, "RssAnon:") || strings.HasPrefix(l, "RssFile:") {
			parts = append(parts, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(parts, ", ")
}

func vmRSS(t *testing.T, pid int) int {
	for _, l := range strings.Split(readFile(fmt.Sprintf("/proc/%d/status", pid)), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
