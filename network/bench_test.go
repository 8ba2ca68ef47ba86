package network

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkAttach times one container's attach to the built-in bridge
// (netns, loopback, bridge+host-local, portmap, firewall, tuning, files)
// and its detach, 20 of each per round, and reports the medians (make
// bench prints them).
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
	var attach, detach []time.Duration
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
		}
	}
	b.ReportMetric(float64(median(attach).Microseconds())/1000, "ms-attach-median")
	b.ReportMetric(float64(median(detach).Microseconds())/1000, "ms-detach-median")
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
