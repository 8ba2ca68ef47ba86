package cri

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/oci"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CRI's pod-sandbox metrics (the kubelet's PodAndContainerStatsFromCRI
// path) under cAdvisor's names and labels, read from the containers'
// cgroups (v1, or v2 where the host is unified), their processes' /proc
// entries and the pod's network namespace.

// metricLabels are cAdvisor's labels of a container metric.
var metricLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

type metricDesc struct {
	name, help string
	typ        runtime.MetricType
	extra      []string // labels after metricLabels
}

var (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

// metricDescs are the metrics berth reports. blkio and fs read/write
// counters are described but have no values on this host's overlay (as
// critest allows); hugetlb, pressure, cpu quota, memory reservation and
// ulimits are not reported.
var metricDescs = []metricDesc{
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, []string{"cpu"}},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, nil},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, nil},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", gauge, nil},
	{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", gauge, nil},
	{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil},
	{"container_memory_rss", "Size of RSS in bytes.", gauge, nil},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil},
	{"container_memory_swap", "Container swap usage in bytes.", gauge, nil},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil},
	{"container_memory_failcnt", "Number of memory usage hits limits.", counter, nil},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, []string{"failure_type", "scope"}},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", counter, nil},
	{"container_processes", "Number of processes running inside the container.", gauge, nil},
	{"container_threads", "Number of threads running inside the container.", gauge, nil},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", gauge, nil},
	{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil},
	{"container_sockets", "Number of open sockets for the container.", gauge, nil},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, []string{"device"}},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, []string{"device"}},
	{"container_fs_inodes_total", "Number of available Inodes.", gauge, []string{"device"}},
	{"container_fs_inodes_free", "Number of available Inodes.", gauge, []string{"device"}},
	{"container_fs_reads_total", "Cumulative count of reads completed.", counter, []string{"device"}},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", counter, []string{"device"}},
	{"container_fs_writes_total", "Cumulative count of writes completed.", counter, []string{"device"}},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", counter, []string{"device"}},
	{"container_blkio_device_usage_total", "Blkio device bytes usage.", counter, []string{"device", "major", "minor", "operation"}},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", counter, []string{"interface"}},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", counter, []string{"interface"}},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", counter, []string{"interface"}},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", counter, []string{"interface"}},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", counter, []string{"interface"}},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", counter, []string{"interface"}},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", counter, []string{"interface"}},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", counter, []string{"interface"}},
	{"container_spec_cpu_period", "CPU period of the container.", gauge, nil},
	{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil},
	{"container_last_seen", "Last time a container was seen by the exporter.", gauge, nil},
}

func (s *Service) ListMetricDescriptors(ctx context.Context, req *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	resp := &runtime.ListMetricDescriptorsResponse{}
	for _, d := range metricDescs {
		resp.Descriptors = append(resp.Descriptors, &runtime.MetricDescriptor{Name: d.name, Help: d.help,
			LabelKeys: append(append([]string(nil), metricLabels...), d.extra...)})
	}
	return resp, nil
}

func (s *Service) ListPodSandboxMetrics(ctx context.Context, req *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	resp := &runtime.ListPodSandboxMetricsResponse{}
	for _, sb := range s.sandboxes.list() {
		if s.sandboxState(ctx, sb) != runtime.PodSandboxState_SANDBOX_READY {
			continue
		}
		pm := &runtime.PodSandboxMetrics{PodSandboxId: sb.ID}
		meta := sb.config().GetMetadata()
		for _, c := range s.containersOf(sb.ID) {
			if st := s.state(ctx, c); st.state == runtime.ContainerState_CONTAINER_RUNNING {
				pm.ContainerMetrics = append(pm.ContainerMetrics, &runtime.ContainerMetrics{ContainerId: c.ID,
					Metrics: s.containerMetrics(c, st.pid, meta)})
			}
		}
		resp.PodMetrics = append(resp.PodMetrics, pm)
	}
	return resp, nil
}

// metricSet collects one container's metrics.
type metricSet struct {
	ts     int64
	labels []string
	out    []*runtime.Metric
}

func (m *metricSet) add(name string, typ runtime.MetricType, v uint64, extra ...string) {
	m.out = append(m.out, &runtime.Metric{Name: name, Timestamp: m.ts, MetricType: typ,
		LabelValues: append(append([]string(nil), m.labels...), extra...), Value: &runtime.UInt64Value{Value: v}})
}

func (s *Service) containerMetrics(c *container, pid uint32, pod *runtime.PodSandboxMetadata) []*runtime.Metric {
	cfg := c.config()
	m := &metricSet{ts: time.Now().UnixNano(),
		labels: []string{cfg.GetMetadata().GetName(), c.ID, cfg.GetImage().GetImage(), c.ID, pod.GetNamespace(), pod.GetName()}}
	cgPath := c.CgroupsPath
	if cgPath == "" {
		cgPath = oci.DefaultCgroupsPath(Namespace, c.ID)
	}
	cg := cgroupFiles{root: "/sys/fs/cgroup", path: cgPath}
	sec := func(ns uint64) uint64 { return ns / 1e9 }

	// CPU: cpuacct (v1) or cpu.stat (v2); times in seconds, as cAdvisor.
	if usage, ok := cg.uint("cpuacct", "cpuacct.usage"); ok {
		m.add("container_cpu_usage_seconds_total", counter, sec(usage), "total")
		st := cg.kv("cpuacct", "cpuacct.stat") // USER_HZ ticks
		m.add("container_cpu_user_seconds_total", counter, st["user"]/100)
		m.add("container_cpu_system_seconds_total", counter, st["system"]/100)
	} else if st := cg.kv("", "cpu.stat"); len(st) > 0 {
		m.add("container_cpu_usage_seconds_total", counter, st["usage_usec"]/1e6, "total")
		m.add("container_cpu_user_seconds_total", counter, st["user_usec"]/1e6)
		m.add("container_cpu_system_seconds_total", counter, st["system_usec"]/1e6)
	}
	st := cg.kv("cpu", "cpu.stat")
	if len(st) == 0 {
		st = cg.kv("", "cpu.stat")
	}
	if len(st) > 0 {
		throttled := st["throttled_time"] // ns in v1
		if v, ok := st["throttled_usec"]; ok {
			throttled = v * 1000
		}
		m.add("container_cpu_cfs_periods_total", counter, st["nr_periods"])
		m.add("container_cpu_cfs_throttled_periods_total", counter, st["nr_throttled"])
		m.add("container_cpu_cfs_throttled_seconds_total", counter, sec(throttled))
	}

	// Memory.
	ms := cg.kv("memory", "memory.stat")
	if usage, ok := cg.uint("memory", "memory.usage_in_bytes"); ok {
		m.add("container_memory_usage_bytes", gauge, usage)
		m.add("container_memory_working_set_bytes", gauge, usage-min(usage, ms["total_inactive_file"]))
		maxUsage, _ := cg.uint("memory", "memory.max_usage_in_bytes")
		m.add("container_memory_max_usage_bytes", gauge, maxUsage)
		m.add("container_memory_cache", gauge, ms["cache"])
		m.add("container_memory_rss", gauge, ms["rss"])
		m.add("container_memory_mapped_file", gauge, ms["mapped_file"])
		m.add("container_memory_swap", gauge, ms["swap"])
		kmem, _ := cg.uint("memory", "memory.kmem.usage_in_bytes")
		m.add("container_memory_kernel_usage", gauge, kmem)
		failcnt, _ := cg.uint("memory", "memory.failcnt")
		m.add("container_memory_failcnt", counter, failcnt)
		m.add("container_oom_events_total", counter, cg.kv("memory", "memory.oom_control")["oom_kill"])
	} else if usage, ok := cg.uint("", "memory.current"); ok {
		m.add("container_memory_usage_bytes", gauge, usage)
		m.add("container_memory_working_set_bytes", gauge, usage-min(usage, ms["inactive_file"]))
		peak, _ := cg.uint("", "memory.peak")
		m.add("container_memory_max_usage_bytes", gauge, peak)
		m.add("container_memory_cache", gauge, ms["file"])
		m.add("container_memory_rss", gauge, ms["anon"])
		m.add("container_memory_mapped_file", gauge, ms["file_mapped"])
		swap, _ := cg.uint("", "memory.swap.current")
		m.add("container_memory_swap", gauge, swap)
		m.add("container_memory_kernel_usage", gauge, ms["kernel"])
		ev := cg.kv("", "memory.events")
		m.add("container_memory_failcnt", counter, ev["max"])
		m.add("container_oom_events_total", counter, ev["oom_kill"])
	}
	m.add("container_memory_failures_total", counter, ms["pgfault"], "pgfault", "container")
	m.add("container_memory_failures_total", counter, ms["pgmajfault"], "pgmajfault", "container")

	// Processes, threads, descriptors, sockets.
	procs := cg.pids("pids", "cgroup.procs")
	if len(procs) == 0 {
		procs = cg.pids("", "cgroup.procs")
	}
	m.add("container_processes", gauge, uint64(len(procs)))
	m.add("container_threads", gauge, uint64(len(cg.pids("pids", "tasks"))+len(cg.pids("", "cgroup.threads"))))
	tmax, _ := cg.uint("pids", "pids.max") // "max" reads as 0: infinity
	m.add("container_threads_max", gauge, tmax)
	var fds, socks uint64
	for _, p := range procs {
		ents, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/fd")
		for _, e := range ents {
			fds++
			if l, err := os.Readlink("/proc/" + strconv.Itoa(p) + "/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
				socks++
			}
		}
	}
	m.add("container_file_descriptors", gauge, fds)
	m.add("container_sockets", gauge, socks)

	// The filesystem of the writable layer.
	var fs unix.Statfs_t
	if dev := s.opts.ImageFsPath; dev != "" && unix.Statfs(dev, &fs) == nil {
		var used uint64
		if st := s.containerStats(context.Background(), c); st.GetWritableLayer() != nil {
			used = st.GetWritableLayer().GetUsedBytes().GetValue()
		}
		m.add("container_fs_usage_bytes", gauge, used, dev)
		m.add("container_fs_limit_bytes", gauge, fs.Blocks*uint64(fs.Bsize), dev)
		m.add("container_fs_inodes_total", gauge, fs.Files, dev)
		m.add("container_fs_inodes_free", gauge, fs.Ffree, dev)
	}

	// The pod's network, as the container's process sees it.
	if pid != 0 {
		for _, n := range netDev("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/net/dev") {
			m.add("container_network_receive_bytes_total", counter, n.v[0], n.iface)
			m.add("container_network_receive_packets_total", counter, n.v[1], n.iface)
			m.add("container_network_receive_errors_total", counter, n.v[2], n.iface)
			m.add("container_network_receive_packets_dropped_total", counter, n.v[3], n.iface)
			m.add("container_network_transmit_bytes_total", counter, n.v[8], n.iface)
			m.add("container_network_transmit_packets_total", counter, n.v[9], n.iface)
			m.add("container_network_transmit_errors_total", counter, n.v[10], n.iface)
			m.add("container_network_transmit_packets_dropped_total", counter, n.v[11], n.iface)
		}
	}

	// What the kubelet asked for, and when it started.
	res := cfg.GetLinux().GetResources()
	m.add("container_spec_cpu_period", gauge, uint64(max(res.GetCpuPeriod(), 0)))
	m.add("container_spec_cpu_shares", gauge, uint64(max(res.GetCpuShares(), 0)))
	m.add("container_spec_memory_limit_bytes", gauge, uint64(max(res.GetMemoryLimitInBytes(), 0)))
	m.add("container_spec_memory_swap_limit_bytes", gauge, uint64(max(res.GetMemorySwapLimitInBytes(), 0)))
	m.add("container_start_time_seconds", gauge, uint64(max(c.StartedAt, 0)/1e9))
	m.add("container_last_seen", gauge, uint64(time.Now().Unix()))
	return m.out
}

// cgroupFiles reads a cgroup's files: v1 under the controller's
// hierarchy, v2 (controller "") under the unified root.
type cgroupFiles struct{ root, path string }

func (c cgroupFiles) file(ctrl, name string) string {
	return filepath.Join(c.root, ctrl, c.path, name)
}

func (c cgroupFiles) uint(ctrl, name string) (uint64, bool) {
	b, err := os.ReadFile(c.file(ctrl, name))
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil || strings.TrimSpace(string(b)) == "max"
}

// kv reads a "key value" file (memory.stat, cpu.stat, ...).
func (c cgroupFiles) kv(ctrl, name string) map[string]uint64 {
	f, err := os.Open(c.file(ctrl, name))
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

func (c cgroupFiles) pids(ctrl, name string) []int {
	b, err := os.ReadFile(c.file(ctrl, name))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

type netStat struct {
	iface string
	v     [16]uint64
}

// netDev parses /proc/<pid>/net/dev (loopback left out).
func netDev(path string) []netStat {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []netStat
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "lo" || strings.Contains(name, "|") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			continue
		}
		n := netStat{iface: name}
		for i := range n.v {
			n.v[i], _ = strconv.ParseUint(f[i], 10, 64)
		}
		out = append(out, n)
	}
	return out
}
