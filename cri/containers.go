package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"berth.dev/berth/node"
	"berth.dev/berth/oci"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// container is the CRI's record of a container in a pod: a berth
// container of the same ID whose task is the container's process.
type container struct {
	ID        string `json:"id"`
	SandboxID string `json:"sandboxId"`
	// Config is the kubelet's ContainerConfig (protojson).
	Config json.RawMessage `json:"config"`
	// ImageID is the image's ID (config digest); ImageRef its repo digest
	// as the kubelet reports it (the ID when it has none).
	ImageID     string `json:"imageId"`
	ImageRef    string `json:"imageRef"`
	CreatedAt   int64  `json:"createdAt"`
	StartedAt   int64  `json:"startedAt,omitempty"`
	LogPath     string `json:"logPath,omitempty"`
	CgroupsPath string `json:"cgroupsPath"`
}

func (c *container) config() *runtime.ContainerConfig {
	cfg := &runtime.ContainerConfig{}
	_ = protojson.Unmarshal(c.Config, cfg)
	return cfg
}

func (s *Service) containersOf(sandboxID string) []*container {
	var out []*container
	for _, c := range s.containers.list() {
		if c.SandboxID == sandboxID {
			out = append(out, c)
		}
	}
	return out
}

// CreateContainer creates a container in a pod: in the sandbox's network,
// IPC and UTS namespaces (and PID, when the pod shares it), with the
// kubelet's mounts, environment, user and limits, its log at the path
// the kubelet gives.
func (s *Service) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("container config: metadata.name is required: %w", errdefs.ErrInvalidArgument)
	}
	sid, sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %s: %w", req.GetPodSandboxId(), err)
	}
	if s.sandboxState(ctx, sb) != runtime.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("pod sandbox %s is not ready: %w", sid, errdefs.ErrFailedPrecondition)
	}
	im, err := s.resolveImage(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return nil, fmt.Errorf("container %s: image %s: %w", cfg.GetMetadata().GetName(), cfg.GetImage().GetImage(), err)
	}
	sbCfg := sb.config()
	rt, err := s.runtimeName(sb.RuntimeHandler)
	if err != nil {
		return nil, err
	}
	id := newID()
	settings, err := s.containerSettings(ctx, id, sb, sbCfg, cfg)
	if err != nil {
		return nil, err
	}
	settings.Runtime = rt
	if dir, p := req.GetSandboxConfig().GetLogDirectory(), cfg.GetLogPath(); p != "" {
		if dir == "" {
			dir = sbCfg.GetLogDirectory()
		}
		if dir != "" {
			settings.LogPath = filepath.Join(dir, p)
		}
	}
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	ref := im.id
	if ci := s.cri(im); len(ci.RepoDigests) > 0 {
		ref = ci.RepoDigests[0]
	}
	rec := &container{ID: id, SandboxID: sid, Config: raw, ImageID: im.id, ImageRef: ref,
		CreatedAt: time.Now().UnixNano(), LogPath: settings.LogPath, CgroupsPath: settings.CgroupsPath}
	labels := map[string]string{labelKind: kindContainer, labelSandbox: sid}
	if _, err := s.node.CreateContainer(ctx, Namespace, id, im.records[0].Name, "", settings, labels); err != nil {
		return nil, fmt.Errorf("container %s: %w", cfg.GetMetadata().GetName(), err)
	}
	if err := s.containers.put(id, rec); err != nil {
		_ = s.node.DeleteContainer(context.WithoutCancel(ctx), Namespace, id)
		return nil, err
	}
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// containerSettings turns a ContainerConfig into berth's settings.
func (s *Service) containerSettings(ctx context.Context, id string, sb *sandbox, sbCfg *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig) (node.ContainerSettings, error) {
	var st node.ContainerSettings
	if len(cfg.GetCommand()) > 0 {
		st.Entrypoint = cfg.GetCommand()
	}
	st.Args = cfg.GetArgs()
	for _, kv := range cfg.GetEnvs() {
		st.Env = append(st.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	st.WorkingDir = cfg.GetWorkingDir()
	st.Terminal = cfg.GetTty()
	st.Hostname = sbCfg.GetHostname()
	st.Annotations = map[string]string{"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": sb.ID,
		"io.kubernetes.cri.container-name": cfg.GetMetadata().GetName()}
	sc := cfg.GetLinux().GetSecurityContext()
	switch {
	case sc.GetRunAsUser() != nil:
		st.User = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	case sc.GetRunAsUsername() != "":
		st.User = sc.GetRunAsUsername()
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if st.User == "" {
			return st, fmt.Errorf("container %s: run-as group %d without a run-as user: %w", cfg.GetMetadata().GetName(), g.GetValue(), errdefs.ErrInvalidArgument)
		}
		st.User += ":" + strconv.FormatInt(g.GetValue(), 10)
	}
	st.Privileged = sc.GetPrivileged()
	sec, err := security(sc.GetCapabilities(), sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil {
		return st, fmt.Errorf("container %s: %w", cfg.GetMetadata().GetName(), err)
	}
	sec.MaskedPaths, sec.ReadonlyPaths = sc.GetMaskedPaths(), sc.GetReadonlyPaths()
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > 1<<31-1 {
			return st, fmt.Errorf("container %s: supplemental group %d out of range: %w", cfg.GetMetadata().GetName(), g, errdefs.ErrInvalidArgument)
		}
		sec.SupplementalGroups = append(sec.SupplementalGroups, uint32(g))
	}
	sec.StrictGroups = sc.GetSupplementalGroupsPolicy() == runtime.SupplementalGroupsPolicy_Strict
	st.Security = sec
	st.ReadonlyRootfs = sc.GetReadonlyRootfs()
	nnp := sc.GetNoNewPrivs()
	st.NoNewPrivileges = &nnp
	res := cfg.GetLinux().GetResources()
	if q, p := res.GetCpuQuota(), res.GetCpuPeriod(); q > 0 && p > 0 {
		st.Resources.CPU = float64(q) / float64(p)
	}
	st.Resources.MemoryBytes = res.GetMemoryLimitInBytes()
	st.OOMScoreAdj = s.clampOOM(int(res.GetOomScoreAdj()))
	if p := sbCfg.GetLinux().GetCgroupParent(); p != "" {
		st.CgroupsPath = path.Join(path.Clean("/"+p), id)
	}
	// The pod's namespaces: network (or the host's), IPC and UTS always,
	// PID when the pod shares it.
	if sb.HostNetwork {
		st.NetworkHost = true
	} else {
		st.NetNSPath = sb.NetNS
	}
	st.NamespacePaths = map[string]string{}
	if sb.Pid != 0 {
		proc := "/proc/" + strconv.FormatUint(uint64(sb.Pid), 10) + "/ns/"
		st.NamespacePaths["ipc"] = proc + "ipc"
		if !sb.HostNetwork {
			st.NamespacePaths["uts"] = proc + "uts"
		}
		if sc.GetNamespaceOptions().GetPid() == runtime.NamespaceMode_POD {
			st.NamespacePaths["pid"] = proc + "pid"
		}
	}
	// The host's namespaces, as the pod's options (repeated on each
	// container by the kubelet) say; TARGET shares another container's PID
	// namespace (ephemeral debug containers).
	nso := sc.GetNamespaceOptions()
	if nso.GetIpc() == runtime.NamespaceMode_NODE || sbCfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE {
		st.NamespacePaths["ipc"] = oci.HostNamespace
	}
	switch nso.GetPid() {
	case runtime.NamespaceMode_NODE:
		st.NamespacePaths["pid"] = oci.HostNamespace
	case runtime.NamespaceMode_TARGET:
		tid, tc, err := s.containers.get(nso.GetTargetId())
		if err != nil {
			return st, fmt.Errorf("container %s: PID namespace target %s: %w", cfg.GetMetadata().GetName(), nso.GetTargetId(), err)
		}
		if tc.SandboxID != sb.ID {
			return st, fmt.Errorf("container %s: PID namespace target %s is in another pod: %w", cfg.GetMetadata().GetName(), tid, errdefs.ErrInvalidArgument)
		}
		ti, err := s.node.GetTask(ctx, Namespace, tid)
		if err != nil || ti.Pid == 0 || ti.Status != spec.TaskPhaseRunning {
			return st, fmt.Errorf("container %s: PID namespace target %s is not running: %w", cfg.GetMetadata().GetName(), tid, errdefs.ErrFailedPrecondition)
		}
		st.NamespacePaths["pid"] = "/proc/" + strconv.FormatUint(uint64(ti.Pid), 10) + "/ns/pid"
	}
	for _, m := range cfg.GetMounts() {
		if m.GetHostPath() == "" || m.GetContainerPath() == "" {
			continue
		}
		// A host path that is not there is made a directory, as
		// containerd and the docker shim did.
		if _, err := os.Stat(m.GetHostPath()); os.IsNotExist(err) {
			if err := os.MkdirAll(m.GetHostPath(), 0o755); err != nil {
				return st, fmt.Errorf("mount %s: %w", m.GetHostPath(), err)
			}
		}
		prop := ""
		switch m.GetPropagation() {
		case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			prop = "rslave"
		case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			prop = "rshared"
		}
		if m.GetRecursiveReadOnly() && (!m.GetReadonly() || prop != "") {
			return st, fmt.Errorf("mount %s: recursive read-only wants readonly and private propagation: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		st.Mounts = append(st.Mounts, oci.Mount{Type: oci.MountBind, Source: m.GetHostPath(), Target: path.Clean(m.GetContainerPath()),
			ReadOnly: m.GetReadonly(), Propagation: prop, RecursiveReadOnly: m.GetRecursiveReadOnly()})
	}
	// The pod's hosts, resolv.conf and hostname are the node's to mount
	// (ContainerSettings.NetworkFilesOf): they live under berthd's state
	// directory, which the node policy keeps user binds out of.
	if !sb.HostNetwork && s.opts.Network != nil {
		st.NetworkFilesOf = sb.ID
	}
	return st, nil
}

// StartContainer starts the container's process (its task).
func (s *Service) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	id, c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.GetContainerId(), err)
	}
	if c.StartedAt != 0 {
		return nil, fmt.Errorf("container %s was started already: %w", id, errdefs.ErrFailedPrecondition)
	}
	cfg := c.config()
	stdio := node.Stdio{Terminal: cfg.GetTty()}
	if cfg.GetStdin() {
		// The container's stdin is a FIFO the shim keeps open: attach
		// writes to it, and with stdin_once the first attach's end closes it.
		if stdio.Stdin, err = s.stdinFIFO(id); err != nil {
			return nil, fmt.Errorf("container %s: %w", id, err)
		}
		stdio.StdinOpen = true
	}
	// Created and started in one runtime call (runc run).
	if _, err := s.node.RunTask(ctx, Namespace, id, stdio); err != nil {
		_, _ = s.node.DeleteTask(context.WithoutCancel(ctx), Namespace, id, true)
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	if _, err := s.containers.update(id, func(c *container) { c.StartedAt = time.Now().UnixNano() }); err != nil {
		return nil, err
	}
	return &runtime.StartContainerResponse{}, nil
}

// stopContainer stops a container's process: SIGTERM, SIGKILL after
// timeout (at once for 0).
func (s *Service) stopContainer(ctx context.Context, id string, timeout time.Duration) error {
	return s.stopTask(ctx, id, timeout)
}

// StopContainer of an unknown ID succeeds, as the CRI asks.
func (s *Service) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	id, _, err := s.containers.get(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtime.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopContainer(ctx, id, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

func (s *Service) removeContainer(ctx context.Context, id string) error {
	if _, err := s.node.DeleteTask(ctx, Namespace, id, true); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := s.node.DeleteContainer(ctx, Namespace, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := os.Remove(s.stdinPath(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return s.containers.delete(id)
}

// RemoveContainer removes a container, running or not; an unknown ID is
// no error.
func (s *Service) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	id, _, err := s.containers.get(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtime.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removeContainer(ctx, id); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

// containerState is the container's state as the kubelet sees it, with
// its exit when it has exited.
type containerState struct {
	state      runtime.ContainerState
	exitCode   int32
	finishedAt int64
	reason     string
	pid        uint32
}

func (s *Service) state(ctx context.Context, c *container) containerState {
	info, err := s.node.GetTask(ctx, Namespace, c.ID)
	if err == nil {
		switch info.Status {
		case spec.TaskPhaseRunning, spec.TaskPhasePaused:
			return containerState{state: runtime.ContainerState_CONTAINER_RUNNING, pid: info.Pid}
		case spec.TaskPhaseCreated:
			return containerState{state: runtime.ContainerState_CONTAINER_CREATED}
		default:
			return exited(int32(info.ExitStatus), info.ExitedAt, info.OOMKilled)
		}
	}
	if c.StartedAt == 0 {
		return containerState{state: runtime.ContainerState_CONTAINER_CREATED}
	}
	// No task: it was deleted after the exit, or a reboot took it; the
	// node's record keeps the last exit.
	if rec, err := s.opts.DB.GetContainer(ctx, Namespace, c.ID); err == nil && rec.LastExit != nil {
		return exited(int32(rec.LastExit.ExitStatus), rec.LastExit.ExitedAt, rec.LastExit.OOMKilled)
	}
	return containerState{state: runtime.ContainerState_CONTAINER_EXITED, exitCode: 255, reason: "Unknown"}
}

func exited(code int32, at time.Time, oom bool) containerState {
	st := containerState{state: runtime.ContainerState_CONTAINER_EXITED, exitCode: code, reason: "Completed"}
	if !at.IsZero() {
		st.finishedAt = at.UnixNano()
	}
	switch {
	case oom:
		st.reason = "OOMKilled"
	case code != 0:
		st.reason = "Error"
	}
	return st
}

func (s *Service) ContainerStatus(ctx context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	_, c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.GetContainerId(), err)
	}
	cfg := c.config()
	st := s.state(ctx, c)
	status := &runtime.ContainerStatus{
		Id: c.ID, Metadata: cfg.GetMetadata(), State: st.state, CreatedAt: c.CreatedAt, StartedAt: c.StartedAt,
		FinishedAt: st.finishedAt, ExitCode: st.exitCode, Reason: st.reason,
		Image: &runtime.ImageSpec{Image: c.ImageID}, ImageRef: c.ImageRef, ImageId: c.ImageID,
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), LogPath: c.LogPath,
	}
	if st.state != runtime.ContainerState_CONTAINER_EXITED {
		status.ExitCode, status.Reason = 0, ""
	}
	for _, m := range cfg.GetMounts() {
		status.Mounts = append(status.Mounts, &runtime.Mount{ContainerPath: m.GetContainerPath(), HostPath: m.GetHostPath(), Readonly: m.GetReadonly(),
			Propagation: m.GetPropagation(), SelinuxRelabel: m.GetSelinuxRelabel(), RecursiveReadOnly: m.GetRecursiveReadOnly()})
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		status.Resources = &runtime.ContainerResources{Linux: r}
	}
	// The process's identity as the runtime resolved it (the image's
	// passwd and group included), as the kubelet shows it.
	if rec, err := s.opts.DB.GetContainer(ctx, Namespace, c.ID); err == nil {
		var sp struct {
			Process *struct {
				User struct {
					UID            uint32   `json:"uid"`
					GID            uint32   `json:"gid"`
					AdditionalGids []uint32 `json:"additionalGids"`
				} `json:"user"`
			} `json:"process"`
		}
		if json.Unmarshal(rec.Spec, &sp) == nil && sp.Process != nil {
			u := &runtime.LinuxContainerUser{Uid: int64(sp.Process.User.UID), Gid: int64(sp.Process.User.GID)}
			for _, g := range sp.Process.User.AdditionalGids {
				u.SupplementalGroups = append(u.SupplementalGroups, int64(g))
			}
			status.User = &runtime.ContainerUser{Linux: u}
		}
	}
	resp := &runtime.ContainerStatusResponse{Status: status}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{"pid": st.pid, "sandboxID": c.SandboxID, "cgroupsPath": c.CgroupsPath,
			"config": json.RawMessage(c.Config), "runtimeType": "io.berth.runc"})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func (s *Service) ListContainers(ctx context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f := req.GetFilter()
	resp := &runtime.ListContainersResponse{}
	for _, c := range s.containers.list() {
		if f.GetId() != "" && !strings.HasPrefix(c.ID, f.GetId()) {
			continue
		}
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(c.SandboxID, f.GetPodSandboxId()) {
			continue
		}
		cfg := c.config()
		if !matchLabels(f.GetLabelSelector(), cfg.GetLabels()) {
			continue
		}
		st := s.state(ctx, c)
		if f.GetState() != nil && f.GetState().GetState() != st.state {
			continue
		}
		resp.Containers = append(resp.Containers, &runtime.Container{Id: c.ID, PodSandboxId: c.SandboxID, Metadata: cfg.GetMetadata(),
			Image: &runtime.ImageSpec{Image: c.ImageID}, ImageRef: c.ImageRef, ImageId: c.ImageID, State: st.state, CreatedAt: c.CreatedAt,
			Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations()})
	}
	return resp, nil
}

// security turns a CRI capability set and seccomp profile (the profile,
// else the deprecated path form) into berth's security settings. No
// profile at all is unconfined, as the CRI says: the kubelet asks for
// RuntimeDefault explicitly.
func security(caps *runtime.Capability, prof *runtime.SecurityProfile, deprecatedPath string) (*oci.Security, error) {
	sec := &oci.Security{CapAdd: caps.GetAddCapabilities(), CapDrop: caps.GetDropCapabilities(), Seccomp: oci.SeccompUnconfined}
	switch {
	case prof != nil:
		switch prof.GetProfileType() {
		case runtime.SecurityProfile_RuntimeDefault:
			sec.Seccomp = oci.SeccompRuntimeDefault
		case runtime.SecurityProfile_Unconfined:
		case runtime.SecurityProfile_Localhost:
			sec.Seccomp, sec.SeccompProfile = oci.SeccompLocalhost, prof.GetLocalhostRef()
		}
	case deprecatedPath == "runtime/default" || deprecatedPath == "docker/default":
		sec.Seccomp = oci.SeccompRuntimeDefault
	case deprecatedPath == "" || deprecatedPath == "unconfined":
	case strings.HasPrefix(deprecatedPath, "localhost/"):
		sec.Seccomp, sec.SeccompProfile = oci.SeccompLocalhost, strings.TrimPrefix(deprecatedPath, "localhost/")
	default:
		return nil, fmt.Errorf("seccomp profile %q: want runtime/default, unconfined or localhost/<path>: %w", deprecatedPath, errdefs.ErrInvalidArgument)
	}
	if sec.Seccomp == oci.SeccompLocalhost && !path.IsAbs(sec.SeccompProfile) {
		return nil, fmt.Errorf("seccomp localhost profile %q: want an absolute path: %w", sec.SeccompProfile, errdefs.ErrInvalidArgument)
	}
	return sec, nil
}

// stdinPath is where a container's stdin FIFO is.
func (s *Service) stdinPath(id string) string { return filepath.Join(s.opts.Root, "cri", "stdin", id) }

// stdinFIFO makes the container's stdin FIFO (again, after a crash).
func (s *Service) stdinFIFO(id string) (string, error) {
	p := s.stdinPath(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("stdin fifo: %w", err)
	}
	return p, nil
}
