package metrics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNew_PresetSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.PresetAPI("berth.images.v1.Images", "Pull", "List")
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want int
	}{
		{"berth_reconcile_total", m.ReconcileTotal, 9},
		{"berth_reconcile_duration_seconds", m.ReconcileDuration, 3},
		{"berth_queue_depth", m.QueueDepth, 3},
		{"berth_drift_repairs_total", m.DriftRepairs, 3},
		{"berth_desired_objects", m.DesiredObjects, 3},
		{"berth_ready_objects", m.ReadyObjects, 3},
		{"berth_pulls_total", m.PullsTotal, 2},
		{"berth_events_published_total", m.EventsPublished, len(Topics)},
		{"berth_api_requests_total", m.APIRequests, 2},
		{"berth_api_request_duration_seconds", m.APIDuration, 2},
		{"berth_pull_bytes_total", m.PullBytes, 1},
		{"berth_events_dropped_total", m.EventsDropped, 1},
		{"berth_manifest_errors_total", m.ManifestErrors, 1},
		{"berth_rollouts_total", m.Rollouts, len(RolloutResults)},
		{"berth_image_updates_total", m.ImageUpdates, len(ImageUpdateResults)},
	} {
		if got := testutil.CollectAndCount(tc.c, tc.name); got != tc.want {
			t.Errorf("%s: got %d series, want %d", tc.name, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(m.ReconcileTotal.WithLabelValues("Task", ResultRequeue)); got != 0 {
		t.Errorf("preset reconcile counter: got %v, want 0", got)
	}
	// The whole registry gathers cleanly (pedantic: consistent help/types),
	// with the Go runtime and process collectors in it.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"go_goroutines", "process_resident_memory_bytes", "berth_pull_duration_seconds"} {
		if !names[n] {
			t.Errorf("%s missing from the registry", n)
		}
	}
}

func TestNew_TwoRegistries(t *testing.T) {
	r1, r2 := prometheus.NewRegistry(), prometheus.NewRegistry()
	m1, m2 := New(r1), New(r2)
	m1.ObservePull(time.Second, 1000, nil)
	m1.ObservePull(time.Second, 0, errors.New("boom"))
	m2.EventsDropped.Inc()
	if got := testutil.ToFloat64(m1.PullBytes); got != 1000 {
		t.Errorf("m1 pull bytes: got %v, want 1000", got)
	}
	if got := testutil.ToFloat64(m2.PullBytes); got != 0 {
		t.Errorf("m2 pull bytes: got %v, want 0 (registries must not share)", got)
	}
	if got := testutil.ToFloat64(m1.PullsTotal.WithLabelValues(ResultError)); got != 1 {
		t.Errorf("m1 failed pulls: got %v, want 1", got)
	}
	if got := testutil.ToFloat64(m1.EventsDropped); got != 0 {
		t.Errorf("m1 dropped: got %v, want 0", got)
	}
	// Registering twice on one registry is a wiring bug and says so.
	defer func() {
		if recover() == nil {
			t.Error("New on the same registry twice did not panic")
		}
	}()
	New(r1)
}

type fakeTasks []ContainerStats

func (f fakeTasks) Stats(context.Context) ([]ContainerStats, error) { return f, nil }

type fakeContent struct{ bytes, blobs int64 }

func (f fakeContent) Usage(context.Context) (int64, int64, error) { return f.bytes, f.blobs, nil }

func TestNodeCollector(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 64<<10)
	if err := os.WriteFile(filepath.Join(dir, "a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A hard link shares the blocks: du counts them once.
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	c := NewNodeCollector(NodeSources{
		Content:      fakeContent{1234, 3},
		Snapshotters: map[string]string{"native": dir},
		Tasks: fakeTasks{{Namespace: "default", Name: "web", CPUSeconds: 1.5, MemoryBytes: 4096,
			MemoryLimit: 1 << 20, Pids: 2}},
		DiskCacheTTL: time.Hour,
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP berth_container_pids Processes in a container's cgroup.
# TYPE berth_container_pids gauge
berth_container_pids{name="web",namespace="default"} 2
# HELP berth_content_blobs Blobs in the content store.
# TYPE berth_content_blobs gauge
berth_content_blobs 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "berth_container_pids", "berth_content_blobs"); err != nil {
		t.Error(err)
	}
	du := DiskUsage(dir)
	if du < 64<<10 || du >= 128<<10 {
		t.Errorf("DiskUsage with a hard link: got %d, want 64 KiB plus a directory block", du)
	}
	// The cached value is reused: growing the directory does not change a
	// scrape within the TTL.
	first := testutil.ToFloat64(gaugeOf(t, reg, "berth_snapshot_bytes"))
	if err := os.WriteFile(filepath.Join(dir, "c"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "berth_snapshot_bytes")); got != first {
		t.Errorf("snapshot bytes within the TTL: got %v, want cached %v", got, first)
	}
}

// gaugeOf gathers one single-series metric as a collector for ToFloat64.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Gauge {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
	for _, mf := range mfs {
		if mf.GetName() == name {
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("%s not gathered", name)
	return nil
}
