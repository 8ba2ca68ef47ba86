package network

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkAttach times one container's attach to the built-in bridge
// (netns with lo up, bridge+host-local, files; berth's subnet rules are
// in place from the first container) and its detach, 20 of each per
// round, and reports the medians (make bench prints them): the detach as
// its caller waits for it (the record marked, the plugins left to the
// background) and until the background is done, which is waited for
// before the next attach so that each attach is timed alone.
func BenchmarkAttach(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	// A container that stays keeps the bridge up, as on a node in use:
	// the first attach's bridge creation is not what is timed.
	if _, err := m.Attach(ctx, Request{Namespace: "bench", ID: "keep", Network: BuiltinNetwork}); err != nil {
		b.Fatal(err)
	}
	defer m.Detach(ctx, "bench", "keep")
	const n = 20
	var attach, detach, detachAll []time.Duration
	self0, children0 := cpuTimes(b)
	for range b.N {
		for i := range n {
			id := fmt.Sprintf("c%d", i)
			s := time.Now()
			if _, err := m.Attach(ctx, Request{Namespace: "bench", ID: id, Network: BuiltinNetwork}); err != nil {
				b.Fatal(err)
			}
			attach = append(attach, time.Since(s))
			s = time.Now()
			if err := m.Detach(ctx, "bench", id); err != nil {
				b.Fatal(err)
			}
			detach = append(detach, time.Since(s))
			m.bg.Wait()
			detachAll = append(detachAll, time.Since(s))
		}
	}
	self1, children1 := cpuTimes(b)
	runs := float64(n * b.N)
	// CPU per attach and detach together: this process's (berthd's part)
	// and the plugins' it ran (exited children).
	b.ReportMetric(float64((self1-self0).Microseconds())/1000/runs, "ms-cpu-self-per-container")
	b.ReportMetric(float64((children1-children0).Microseconds())/1000/runs, "ms-cpu-plugins-per-container")
	b.ReportMetric(float64(median(attach).Microseconds())/1000, "ms-attach-median")
	b.ReportMetric(float64(median(detach).Microseconds())/1000, "ms-detach-median")
	b.ReportMetric(float64(median(detachAll).Microseconds())/1000, "ms-detach-background-median")
}

// cpuTimes are the user+system CPU of this process and of its exited
// children.
func cpuTimes(b *testing.B) (self, children time.Duration) {
	var s, c unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &s); err != nil {
		b.Fatal(err)
	}
	if err := unix.Getrusage(unix.RUSAGE_CHILDREN, &c); err != nil {
		b.Fatal(err)
	}
	tv := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(s.Utime) + tv(s.Stime), tv(c.Utime) + tv(c.Stime)
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
