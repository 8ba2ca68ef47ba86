package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"berth.dev/berth/internal/span"
	"berth.dev/berth/network"
	"berth.dev/berth/node"
	"berth.dev/berth/oci"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Sandbox states in the CRI's records.
const (
	stateReady    = "ready"
	stateNotReady = "notready"
)

// sandbox is the CRI's record of a pod sandbox: a berth container of the
// same ID running the pause image, on the pod's network.
type sandbox struct {
	ID string `json:"id"`
	// Config is the kubelet's PodSandboxConfig (protojson).
	Config         json.RawMessage `json:"config"`
	RuntimeHandler string          `json:"runtimeHandler,omitempty"`
	CreatedAt      int64           `json:"createdAt"`
	State          string          `json:"state"`
	IPs            []string        `json:"ips,omitempty"`
	NetNS          string          `json:"netns,omitempty"`
	HostNetwork    bool            `json:"hostNetwork,omitempty"`
	Image          string          `json:"image"`
	// Pid is the pause process, whose namespaces (ipc, uts, pid) the
	// pod's containers join; it outlives berthd restarts as its shim does.
	Pid uint32 `json:"pid,omitempty"`
}

func (sb *sandbox) config() *runtime.PodSandboxConfig {
	c := &runtime.PodSandboxConfig{}
	_ = protojson.Unmarshal(sb.Config, c)
	return c
}

// newID is a random 32-hex-digit ID: a DNS-1123 label, as berth's
// container IDs must be, and short enough for the shim's socket path.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ownOOMScoreAdj is berthd's oom_score_adj: a child may not go below it
// where root lacks CAP_SYS_RESOURCE (runc then fails to start the
// container with "can't get final child's PID from pipe").
func ownOOMScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return v
}

// clampOOM raises an oom_score_adj the kubelet asks for to berthd's own.
func (s *Service) clampOOM(v int) *int {
	if v < s.ownOOM {
		v = s.ownOOM
	}
	if v > 1000 {
		v = 1000
	}
	return &v
}

// podNetwork is the network pods join: the first conflist of someone else
// in the CNI directory (as kubelet runtimes take the first), else berth's
// built-in bridge, so a node runs pods with no CNI setup.
func (s *Service) podNetwork() string {
	if s.opts.PodNetwork != "" {
		return s.opts.PodNetwork
	}
	if n := firstForeignConflist(s.opts.CNIConfDir); n != "" {
		return n
	}
	return network.BuiltinNetwork
}

func (s *Service) runtimeName(handler string) (string, error) {
	if handler == "" {
		return "", nil
	}
	for _, r := range s.opts.Runtimes {
		if r == handler {
			return r, nil
		}
	}
	return "", fmt.Errorf("runtime handler %q (have %v): %w", handler, s.opts.Runtimes, errdefs.ErrNotFound)
}

// RunPodSandbox creates and starts a pod's sandbox: the pause container on
// the pod's network (CNI ADD through the network package), with the pod's
// hostname, DNS and port mappings.
func (s *Service) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("pod sandbox config: metadata.name is required: %w", errdefs.ErrInvalidArgument)
	}
	rt, err := s.runtimeName(req.GetRuntimeHandler())
	if err != nil {
		return nil, err
	}
	if _, err := s.opts.DB.EnsureNamespace(ctx, Namespace); err != nil {
		return nil, err
	}
	endImg := span.Start(ctx, "cri.sandbox-image")
	img, err := s.sandboxImageName(ctx)
	endImg()
	if err != nil {
		return nil, err
	}
	id := newID()
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostNet := nsOpts.GetNetwork() == runtime.NamespaceMode_NODE
	settings := node.ContainerSettings{Runtime: rt}
	settings.Hostname = cfg.GetHostname()
	settings.OOMScoreAdj = s.clampOOM(-998)
	settings.Annotations = map[string]string{"io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": id}
	if p := cfg.GetLinux().GetCgroupParent(); p != "" {
		settings.CgroupsPath = path.Join(path.Clean("/"+p), id)
	}
	// The pause holds the pod's namespaces: the host's where the pod asks
	// (its containers join the same), and the pod's sysctls are set in
	// them, once, for every container that shares them.
	settings.NamespacePaths = map[string]string{}
	if nsOpts.GetIpc() == runtime.NamespaceMode_NODE {
		settings.NamespacePaths["ipc"] = oci.HostNamespace
	}
	if nsOpts.GetPid() == runtime.NamespaceMode_NODE {
		settings.NamespacePaths["pid"] = oci.HostNamespace
	}
	sc := cfg.GetLinux().GetSecurityContext()
	settings.Privileged = sc.GetPrivileged()
	settings.Security = &oci.Security{Sysctls: cfg.GetLinux().GetSysctls()}
	var req0 *network.Request
	if hostNet {
		settings.NetworkHost = true
	} else {
		if s.opts.Network == nil {
			return nil, fmt.Errorf("pod %s: no network manager on this node: %w", cfg.GetMetadata().GetName(), errdefs.ErrFailedPrecondition)
		}
		nr := network.Request{Namespace: Namespace, Network: s.podNetwork(), Hostname: cfg.GetHostname()}
		if d := cfg.GetDnsConfig(); d != nil {
			nr.DNS = network.DNS{Servers: d.GetServers(), Searches: d.GetSearches(), Options: d.GetOptions()}
		}
		for _, pm := range cfg.GetPortMappings() {
			if pm.GetHostPort() == 0 {
				continue // a port the pod only declares: nothing to publish
			}
			nr.Ports = append(nr.Ports, network.PortMapping{HostPort: int(pm.GetHostPort()), ContainerPort: int(pm.GetContainerPort()),
				Protocol: strings.ToLower(pm.GetProtocol().String()), HostIP: pm.GetHostIp()})
		}
		req0 = &nr
	}
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	sb := &sandbox{ID: id, Config: raw, RuntimeHandler: req.GetRuntimeHandler(), CreatedAt: time.Now().UnixNano(),
		State: stateNotReady, HostNetwork: hostNet, Image: img}
	// The record comes first: a berthd killed during the start leaves a
	// not-ready sandbox the kubelet can see and remove, never an unnamed
	// container.
	if err := s.sandboxes.put(id, sb); err != nil {
		return nil, err
	}
	// The CNI ADD (the plugins' processes, the longest part) runs beside
	// the pause's create: runc needs only the namespace file, which the
	// attach makes first; the pause never reads the pod's network files.
	var (
		att      network.Attachment
		attErr   error
		attached chan struct{}
		netns    string
		ips      []string
	)
	if req0 != nil {
		req0.ID = id
		netns = s.opts.Network.NetNSPath(Namespace, id)
		settings.NetNSPath = netns
		attached = make(chan struct{})
		actx := context.WithoutCancel(ctx)
		go func() {
			defer close(attached)
			end := span.Start(ctx, "cri.cni-add")
			att, attErr = s.opts.Network.Attach(actx, *req0)
			end()
		}()
	}
	ok := false
	defer func() {
		if !ok {
			if attached != nil {
				<-attached
			}
			cctx := context.WithoutCancel(ctx)
			s.teardownSandbox(cctx, id)
			_ = s.sandboxes.delete(id)
		}
	}()
	netErr := func(err error) error {
		return fmt.Errorf("pod %s: network: %w", cfg.GetMetadata().GetName(), err)
	}
	labels := map[string]string{labelKind: kindSandbox}
	endCreate := span.Start(ctx, "cri.create-pause")
	if _, err := s.node.CreateContainer(ctx, Namespace, id, img, "", settings, labels); err != nil {
		return nil, fmt.Errorf("pod %s: create sandbox: %w", cfg.GetMetadata().GetName(), err)
	}
	endCreate()
	if attached != nil {
		if err := waitNetNS(netns, attached); err != nil {
			<-attached
			if attErr != nil {
				return nil, netErr(attErr)
			}
			return nil, netErr(err)
		}
	}
	// Created and started in one runtime call (runc run).
	ti, err := s.node.RunTask(ctx, Namespace, id, node.Stdio{})
	if err != nil {
		return nil, fmt.Errorf("pod %s: start sandbox: %w", cfg.GetMetadata().GetName(), err)
	}
	if attached != nil {
		endWait := span.Start(ctx, "cri.wait-cni")
		<-attached
		endWait()
		if attErr != nil {
			return nil, netErr(attErr)
		}
		for _, ip := range att.IPs {
			ip, _, _ = strings.Cut(ip, "/")
			ips = append(ips, ip)
		}
	}
	if _, err := s.sandboxes.update(id, func(sb *sandbox) {
		sb.State, sb.IPs, sb.NetNS, sb.Pid = stateReady, ips, netns, ti.Pid
	}); err != nil {
		return nil, err
	}
	ok = true
	s.log.Info("pod sandbox running", "id", id, "pod", cfg.GetMetadata().GetNamespace()+"/"+cfg.GetMetadata().GetName(), "ips", ips)
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// Labels on the node's container records say what each CRI object is.
const (
	labelKind     = "io.berth.cri/kind"
	labelSandbox  = "io.berth.cri/sandbox"
	kindSandbox   = "sandbox"
	kindContainer = "container"
)

// stopTask kills a task (SIGKILL after timeout of SIGTERM, at once for a
// zero timeout) and waits for its exit; no task is no error.
func (s *Service) stopTask(ctx context.Context, id string, timeout time.Duration) error {
	info, err := s.node.GetTask(ctx, Namespace, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.Status != spec.TaskPhaseRunning && info.Status != spec.TaskPhasePaused {
		return nil
	}
	if timeout > 0 {
		if err := s.node.KillTask(ctx, Namespace, id, "", syscall.SIGTERM, false); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := s.node.WaitTask(wctx, Namespace, id, "")
		cancel()
		if err == nil {
			return nil
		}
	}
	if err := s.node.KillTask(ctx, Namespace, id, "", syscall.SIGKILL, true); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.node.WaitTask(wctx, Namespace, id, ""); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("container %s did not exit after SIGKILL: %w", id, err)
	}
	return nil
}

// teardownSandbox stops the pause task, deletes it and detaches the
// network; each step tolerates what is already gone.
// The CNI DEL runs beside the pause's kill: a namespace file unmounted
// under a live process is still that process's namespace.
func (s *Service) teardownSandbox(ctx context.Context, id string) {
	var wg sync.WaitGroup
	if s.opts.Network != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			end := span.Start(ctx, "cri.cni-del")
			if err := s.opts.Network.Detach(ctx, Namespace, id); err != nil {
				s.log.Warn("detach sandbox network", "id", id, "err", err)
			}
			end()
		}()
	}
	end := span.Start(ctx, "cri.delete-pause-task")
	if _, err := s.node.DeleteTask(ctx, Namespace, id, true); err != nil && !errdefs.IsNotFound(err) {
		s.log.Warn("delete sandbox task", "id", id, "err", err)
	}
	end()
	wg.Wait()
}

// StopPodSandbox stops the pod's containers and its sandbox and releases
// its network (the IP goes back to the pool). An unknown ID is no error:
// the kubelet retries stops, and the CRI asks for idempotence.
func (s *Service) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	id, _, err := s.sandboxes.get(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	// The pod's containers are killed together, not one after another.
	cs := s.containersOf(id)
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.stopContainer(ctx, c.ID, 0) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.teardownSandbox(ctx, id)
	if _, err := s.sandboxes.update(id, func(sb *sandbox) { sb.State = stateNotReady }); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the pod's containers, its sandbox container
// and record; an unknown ID is no error.
func (s *Service) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	id, _, err := s.sandboxes.get(req.GetPodSandboxId())
	if errdefs.IsNotFound(err) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, c := range s.containersOf(id) {
		if err := s.removeContainer(ctx, c.ID); err != nil {
			return nil, err
		}
	}
	s.teardownSandbox(ctx, id)
	if err := s.node.DeleteContainer(ctx, Namespace, id); err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("remove sandbox %s: %w", id, err)
	}
	if err := s.sandboxes.delete(id); err != nil {
		return nil, err
	}
	return &runtime.RemovePodSandboxResponse{}, nil
}

// sandboxState is what the kubelet is told: ready only while the record
// says so and the pause process runs (a pause killed behind berth's back
// makes the pod not ready, and the kubelet recreates it).
func (s *Service) sandboxState(ctx context.Context, sb *sandbox) runtime.PodSandboxState {
	if sb.State != stateReady {
		return runtime.PodSandboxState_SANDBOX_NOTREADY
	}
	info, err := s.node.GetTask(ctx, Namespace, sb.ID)
	if err != nil || info.Status != spec.TaskPhaseRunning {
		return runtime.PodSandboxState_SANDBOX_NOTREADY
	}
	return runtime.PodSandboxState_SANDBOX_READY
}

func (s *Service) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	_, sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %s: %w", req.GetPodSandboxId(), err)
	}
	cfg := sb.config()
	st := &runtime.PodSandboxStatus{
		Id: sb.ID, Metadata: cfg.GetMetadata(), State: s.sandboxState(ctx, sb), CreatedAt: sb.CreatedAt,
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), RuntimeHandler: sb.RuntimeHandler,
		Linux:   &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{Options: cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
		Network: &runtime.PodSandboxNetworkStatus{},
	}
	if st.State == runtime.PodSandboxState_SANDBOX_READY && len(sb.IPs) > 0 {
		st.Network.Ip = sb.IPs[0]
		for _, ip := range sb.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	resp := &runtime.PodSandboxStatusResponse{Status: st}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{"pid": sb.Pid, "netns": sb.NetNS, "image": sb.Image,
			"hostNetwork": sb.HostNetwork, "config": json.RawMessage(sb.Config), "runtimeType": "io.berth.runc"})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func (s *Service) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	resp := &runtime.ListPodSandboxResponse{}
	for _, sb := range s.sandboxes.list() {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) {
			continue
		}
		cfg := sb.config()
		state := s.sandboxState(ctx, sb)
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), cfg.GetLabels()) {
			continue
		}
		resp.Items = append(resp.Items, &runtime.PodSandbox{Id: sb.ID, Metadata: cfg.GetMetadata(), State: state,
			CreatedAt: sb.CreatedAt, Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), RuntimeHandler: sb.RuntimeHandler})
	}
	return resp, nil
}

func matchLabels(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// waitNetNS waits until path is a network namespace (the attach bind-mounts
// it first) or the attach ends, whichever is first; an attach that ended
// without one failed.
func waitNetNS(path string, attached <-chan struct{}) error {
	isNS := func() bool {
		var st unix.Statfs_t
		return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
	}
	for d := 500 * time.Microsecond; ; d = min(2*d, 10*time.Millisecond) {
		if isNS() {
			return nil
		}
		select {
		case <-attached:
			if isNS() {
				return nil
			}
			return fmt.Errorf("no network namespace at %s: %w", path, errdefs.ErrUnavailable)
		case <-time.After(d):
		}
	}
}
