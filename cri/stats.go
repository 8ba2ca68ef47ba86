package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/oci"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// containerStats reads a container's cgroup figures through its shim; a
// container with no running task has none (its figures are nil).
func (s *Service) containerStats(ctx context.Context, c *container) *runtime.ContainerStats {
	cfg := c.config()
	out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: c.ID, Metadata: cfg.GetMetadata(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations()}}
	m, err := s.node.TaskMetrics(ctx, Namespace, c.ID)
	if err != nil {
		return out
	}
	ts := m.Timestamp.UnixNano()
	out.Cpu = &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: m.CPUUsageNs}}
	out.Memory = &runtime.MemoryUsage{Timestamp: ts, WorkingSetBytes: &runtime.UInt64Value{Value: m.MemoryUsage},
		UsageBytes: &runtime.UInt64Value{Value: m.MemoryUsage}}
	if m.MemoryLimit > m.MemoryUsage {
		out.Memory.AvailableBytes = &runtime.UInt64Value{Value: m.MemoryLimit - m.MemoryUsage}
	}
	out.WritableLayer = &runtime.FilesystemUsage{Timestamp: ts, FsId: &runtime.FilesystemIdentifier{Mountpoint: s.opts.ImageFsPath}}
	// The writable layer is the container's snapshot's own (its upper
	// directory on overlayfs): what the kubelet's eviction counts.
	if rec, err := s.opts.DB.GetContainer(ctx, Namespace, c.ID); err == nil {
		if sn, _, err := s.node.Snapshotter(rec.Snapshotter); err == nil {
			if u, err := sn.Usage(ctx, rec.SnapshotKey); err == nil {
				out.WritableLayer.UsedBytes = &runtime.UInt64Value{Value: uint64(max(u.Size, 0))}
				out.WritableLayer.InodesUsed = &runtime.UInt64Value{Value: uint64(max(u.Inodes, 0))}
			}
		}
	}
	return out
}

func (s *Service) ContainerStats(ctx context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	_, c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.GetContainerId(), err)
	}
	return &runtime.ContainerStatsResponse{Stats: s.containerStats(ctx, c)}, nil
}

func (s *Service) ListContainerStats(ctx context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	resp := &runtime.ListContainerStatsResponse{}
	for _, c := range s.containers.list() {
		if f.GetId() != "" && !strings.HasPrefix(c.ID, f.GetId()) || f.GetPodSandboxId() != "" && !strings.HasPrefix(c.SandboxID, f.GetPodSandboxId()) {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), c.config().GetLabels()) {
			continue
		}
		resp.Stats = append(resp.Stats, s.containerStats(ctx, c))
	}
	return resp, nil
}

// UpdateContainerResources writes the new CPU and memory limits into the
// container's cgroup (cgroupfs, v1 or v2) and records them.
func (s *Service) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	id, c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.GetContainerId(), err)
	}
	r := req.GetLinux()
	if r == nil {
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	cg := c.CgroupsPath
	if cg == "" {
		cg = oci.DefaultCgroupsPath(Namespace, id)
	}
	if _, err := s.node.GetTask(ctx, Namespace, id); err == nil {
		if err := writeCgroupLimits(cg, r); err != nil {
			return nil, fmt.Errorf("update resources of %s: %w", id, err)
		}
	}
	cfg := c.config()
	if cfg.Linux == nil {
		cfg.Linux = &runtime.LinuxContainerConfig{}
	}
	cfg.Linux.Resources = r
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := s.containers.update(id, func(c *container) { c.Config = raw }); err != nil {
		return nil, err
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

// writeCgroupLimits sets cpu quota/period/shares and the memory limit of
// cgroup path p.
func writeCgroupLimits(p string, r *runtime.LinuxContainerResources) error {
	v2 := false
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		v2 = true
	}
	type w struct{ file, val string }
	var ws []w
	if v2 {
		if r.GetCpuQuota() != 0 || r.GetCpuPeriod() != 0 {
			q := "max"
			if r.GetCpuQuota() > 0 {
				q = strconv.FormatInt(r.GetCpuQuota(), 10)
			}
			period := r.GetCpuPeriod()
			if period == 0 {
				period = 100000
			}
			ws = append(ws, w{filepath.Join("/sys/fs/cgroup", p, "cpu.max"), q + " " + strconv.FormatInt(period, 10)})
		}
		if m := r.GetMemoryLimitInBytes(); m > 0 {
			ws = append(ws, w{filepath.Join("/sys/fs/cgroup", p, "memory.max"), strconv.FormatInt(m, 10)})
		}
	} else {
		cpu := filepath.Join("/sys/fs/cgroup/cpu", p)
		if v := r.GetCpuPeriod(); v > 0 {
			ws = append(ws, w{filepath.Join(cpu, "cpu.cfs_period_us"), strconv.FormatInt(v, 10)})
		}
		if v := r.GetCpuQuota(); v != 0 {
			ws = append(ws, w{filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.FormatInt(v, 10)})
		}
		if v := r.GetCpuShares(); v > 0 {
			ws = append(ws, w{filepath.Join(cpu, "cpu.shares"), strconv.FormatInt(v, 10)})
		}
		if m := r.GetMemoryLimitInBytes(); m > 0 {
			mem := filepath.Join("/sys/fs/cgroup/memory", p)
			// memsw first when raising (it must stay >= the limit), last
			// when lowering; trying both orders covers both.
			for _, f := range []string{"memory.memsw.limit_in_bytes", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
				ws = append(ws, w{filepath.Join(mem, f), strconv.FormatInt(m, 10)})
			}
		}
	}
	var last error
	for _, x := range ws {
		if err := os.WriteFile(x.file, []byte(x.val), 0); err != nil && !os.IsNotExist(err) {
			last = err
		} else if err == nil {
			last = nil
		}
	}
	return last
}

// ReopenContainerLog makes the container write to a new file at its log
// path after the kubelet renamed the old one away: the file is created
// here, and the shim, which checks at most once a second that the path
// names its file, moves to it.
func (s *Service) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	id, c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.GetContainerId(), err)
	}
	if st := s.state(ctx, c); st.state != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("container %s is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if c.LogPath == "" {
		return &runtime.ReopenContainerLogResponse{}, nil
	}
	f, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("reopen log of %s: %w", id, err)
	}
	f.Close()
	return &runtime.ReopenContainerLogResponse{}, nil
}

// PodSandboxStats sums the pod's containers' CPU and memory.
func (s *Service) PodSandboxStats(ctx context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	id, sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %s: %w", req.GetPodSandboxId(), err)
	}
	return &runtime.PodSandboxStatsResponse{Stats: s.podStats(ctx, id, sb)}, nil
}

func (s *Service) ListPodSandboxStats(ctx context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	resp := &runtime.ListPodSandboxStatsResponse{}
	for _, sb := range s.sandboxes.list() {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) || !matchLabels(f.GetLabelSelector(), sb.config().GetLabels()) {
			continue
		}
		resp.Stats = append(resp.Stats, s.podStats(ctx, sb.ID, sb))
	}
	return resp, nil
}

func (s *Service) podStats(ctx context.Context, id string, sb *sandbox) *runtime.PodSandboxStats {
	cfg := sb.config()
	ts := time.Now().UnixNano()
	lin := &runtime.LinuxPodSandboxStats{
		Cpu:    &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{}},
		Memory: &runtime.MemoryUsage{Timestamp: ts, WorkingSetBytes: &runtime.UInt64Value{}, UsageBytes: &runtime.UInt64Value{}},
	}
	for _, c := range append([]*container{{ID: id}}, s.containersOf(id)...) {
		m, err := s.node.TaskMetrics(ctx, Namespace, c.ID)
		if err != nil {
			continue
		}
		lin.Cpu.UsageCoreNanoSeconds.Value += m.CPUUsageNs
		lin.Memory.WorkingSetBytes.Value += m.MemoryUsage
		lin.Memory.UsageBytes.Value += m.MemoryUsage
		if c.ID != id {
			lin.Containers = append(lin.Containers, s.containerStats(ctx, c))
		}
	}
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: id, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations()},
		Linux:      lin,
	}
}
