package metrics

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ContainerStats are one running container's cgroup figures.
type ContainerStats struct {
	Namespace, Name string
	CPUSeconds      float64
	MemoryBytes     uint64
	// MemoryLimit is 0 when the container has no limit.
	MemoryLimit uint64
	Pids        uint64
	// Network counters of a bridged container (HasNetwork), as the
	// container sees them.
	HasNetwork       bool
	RxBytes, TxBytes uint64
}

// TaskStats lists the cgroup statistics of the node's running containers.
type TaskStats interface {
	Stats(ctx context.Context) ([]ContainerStats, error)
}

// ContentUsage reports the content store's size: the bytes of its blobs and
// how many there are.
type ContentUsage interface {
	Usage(ctx context.Context) (bytes, blobs int64, err error)
}

// NodeSources are what NodeCollector reads at scrape time. Any may be nil
// (empty) and is then left out.
type NodeSources struct {
	Content ContentUsage
	// Snapshotters maps a snapshotter's name to its root directory, whose
	// disk usage is measured by walking it.
	Snapshotters map[string]string
	Tasks        TaskStats
	// DiskCacheTTL is how long a measured directory size is reused
	// (default 30 s): walking a snapshotter's tree is too slow for every
	// scrape.
	DiskCacheTTL time.Duration
	// Timeout bounds one scrape's reads (default 5 s).
	Timeout time.Duration
	Log     *slog.Logger
}

// NodeCollector reads the node's state when scraped.
type NodeCollector struct {
	src NodeSources

	contentBytes, contentBlobs *prometheus.Desc
	snapshotBytes              *prometheus.Desc
	cpu, mem, memLimit, pids   *prometheus.Desc
	rx, tx                     *prometheus.Desc

	mu   sync.Mutex
	disk map[string]diskSample
}

type diskSample struct {
	bytes int64
	at    time.Time
}

var _ prometheus.Collector = (*NodeCollector)(nil)

// NewNodeCollector returns a collector over src; register it with
// reg.MustRegister.
func NewNodeCollector(src NodeSources) *NodeCollector {
	if src.DiskCacheTTL == 0 {
		src.DiskCacheTTL = 30 * time.Second
	}
	if src.Timeout == 0 {
		src.Timeout = 5 * time.Second
	}
	if src.Log == nil {
		src.Log = slog.Default()
	}
	ctr := []string{"namespace", "name"}
	return &NodeCollector{
		src:           src,
		contentBytes:  prometheus.NewDesc("berth_content_bytes", "Bytes of blobs in the content store.", nil, nil),
		contentBlobs:  prometheus.NewDesc("berth_content_blobs", "Blobs in the content store.", nil, nil),
		snapshotBytes: prometheus.NewDesc("berth_snapshot_bytes", "Disk usage of a snapshotter's directory (cached).", []string{"snapshotter"}, nil),
		cpu:           prometheus.NewDesc("berth_container_cpu_seconds_total", "CPU time used by a container's cgroup.", ctr, nil),
		mem:           prometheus.NewDesc("berth_container_memory_bytes", "Memory used by a container's cgroup.", ctr, nil),
		memLimit:      prometheus.NewDesc("berth_container_memory_limit_bytes", "Memory limit of a container's cgroup (0: none).", ctr, nil),
		pids:          prometheus.NewDesc("berth_container_pids", "Processes in a container's cgroup.", ctr, nil),
		rx:            prometheus.NewDesc("berth_container_network_receive_bytes_total", "Bytes a bridged container received.", ctr, nil),
		tx:            prometheus.NewDesc("berth_container_network_transmit_bytes_total", "Bytes a bridged container sent.", ctr, nil),
		disk:          map[string]diskSample{},
	}
}

// Describe sends the descriptors of every metric Collect may send.
func (c *NodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.contentBytes, c.contentBlobs, c.snapshotBytes, c.cpu, c.mem, c.memLimit, c.pids, c.rx, c.tx} {
		ch <- d
	}
}

// Collect reads the sources. A source that fails is logged and left out of
// this scrape; the others are still reported.
func (c *NodeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.src.Timeout)
	defer cancel()
	if c.src.Content != nil {
		if b, n, err := c.src.Content.Usage(ctx); err != nil {
			c.src.Log.Warn("metrics: content usage", "err", err)
		} else {
			ch <- prometheus.MustNewConstMetric(c.contentBytes, prometheus.GaugeValue, float64(b))
			ch <- prometheus.MustNewConstMetric(c.contentBlobs, prometheus.GaugeValue, float64(n))
		}
	}
	for name, dir := range c.src.Snapshotters {
		ch <- prometheus.MustNewConstMetric(c.snapshotBytes, prometheus.GaugeValue, float64(c.diskUsage(dir)), name)
	}
	if c.src.Tasks != nil {
		stats, err := c.src.Tasks.Stats(ctx)
		if err != nil {
			c.src.Log.Warn("metrics: task stats", "err", err)
		}
		for _, s := range stats {
			ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.CounterValue, s.CPUSeconds, s.Namespace, s.Name)
			ch <- prometheus.MustNewConstMetric(c.mem, prometheus.GaugeValue, float64(s.MemoryBytes), s.Namespace, s.Name)
			ch <- prometheus.MustNewConstMetric(c.memLimit, prometheus.GaugeValue, float64(s.MemoryLimit), s.Namespace, s.Name)
			ch <- prometheus.MustNewConstMetric(c.pids, prometheus.GaugeValue, float64(s.Pids), s.Namespace, s.Name)
			if s.HasNetwork {
				ch <- prometheus.MustNewConstMetric(c.rx, prometheus.CounterValue, float64(s.RxBytes), s.Namespace, s.Name)
				ch <- prometheus.MustNewConstMetric(c.tx, prometheus.CounterValue, float64(s.TxBytes), s.Namespace, s.Name)
			}
		}
	}
}

// diskUsage returns dir's usage, measured again only when the last sample
// is older than the TTL. Concurrent scrapes wait for one walk.
func (c *NodeCollector) diskUsage(dir string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.disk[dir]
	if ok && time.Since(s.at) < c.src.DiskCacheTTL {
		return s.bytes
	}
	s = diskSample{bytes: DiskUsage(dir), at: time.Now()}
	c.disk[dir] = s
	return s.bytes
}

// DiskUsage is what du reports for dir: allocated blocks, each inode counted
// once (layers share files through hard links), not crossing into other
// filesystems (overlay mounts of running containers live elsewhere, but a
// mount under dir must not be counted twice). Unreadable entries are skipped.
func DiskUsage(dir string) int64 {
	var root syscall.Stat_t
	if err := syscall.Lstat(dir, &root); err != nil {
		return 0
	}
	type ino struct{ dev, ino uint64 }
	seen := map[ino]bool{}
	var total int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Dev != root.Dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			k := ino{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}
