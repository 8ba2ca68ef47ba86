package network

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
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
	b.ReportMetric(float64(median(attach).Microseconds())/1000, "ms-attach-median")
	b.ReportMetric(float64(median(detach).Microseconds())/1000, "ms-detach-median")
	b.ReportMetric(float64(median(detachAll).Microseconds())/1000, "ms-detach-background-median")
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
