package cri

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"berth.dev/berth/version"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeAPIVersion is the CRI version served.
const runtimeAPIVersion = "v1"

// Version says who serves the CRI.
func (s *Service) Version(ctx context.Context, _ *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       "berth",
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}

// Status reports RuntimeReady (always: a berthd that answers runs
// containers) and NetworkReady, true once pods have a network to join:
// berth's built-in bridge counts, so a node needs no CNI setup.
func (s *Service) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	netReady, reason, msg := s.networkReady()
	cond := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: netReady}
	if !netReady {
		cond.Reason, cond.Message = reason, msg
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
			{Type: runtime.RuntimeReady, Status: true}, cond,
		}},
		// Strict groups: the image's /etc/group is not merged in.
		Features: &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	for _, h := range s.handlers() {
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Name: h,
			Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: s.supportsRRO(h)}})
	}
	if req.GetVerbose() {
		cfg, _ := json.Marshal(map[string]any{
			"sandboxImage":   s.opts.SandboxImage,
			"streamAddress":  s.opts.StreamAddress,
			"cniConfDir":     s.opts.CNIConfDir,
			"runtimes":       s.opts.Runtimes,
			"defaultRuntime": s.opts.DefaultRuntime,
			"cgroupDriver":   "cgroupfs",
			"namespace":      Namespace,
		})
		resp.Info = map[string]string{"config": string(cfg)}
	}
	return resp, nil
}

// handlers are the runtime handler names: "" (the default) first, then
// each configured runtime.
func (s *Service) handlers() []string {
	out := []string{""}
	for _, r := range s.opts.Runtimes {
		if r != "" {
			out = append(out, r)
		}
	}
	return out
}

// networkReady is true when pods can be attached: the network manager
// runs (it writes berth's built-in bridge conflist) or the CNI directory
// holds a conflist of someone else's.
func (s *Service) networkReady() (bool, string, string) {
	if s.opts.Network != nil {
		return true, "", ""
	}
	if s.opts.CNIConfDir != "" {
		for _, pat := range []string{"*.conflist", "*.conf", "*.json"} {
			if m, _ := filepath.Glob(filepath.Join(s.opts.CNIConfDir, pat)); len(m) > 0 {
				if _, err := os.Stat(m[0]); err == nil {
					return true, "", ""
				}
			}
		}
	}
	return false, "NetworkPluginNotReady", "berth's network manager is not running and no CNI config is in " + s.opts.CNIConfDir
}

// RuntimeConfig tells the kubelet the cgroup driver: cgroupfs, the driver
// berth's containers use (their cgroups are paths under /berth or the
// pod's parent, not systemd units).
func (s *Service) RuntimeConfig(ctx context.Context, _ *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: runtime.CgroupDriver_CGROUPFS}}, nil
}

// UpdateRuntimeConfig takes the pod CIDR the kubelet sends; berth's
// networks have their own subnets, so there is nothing to change.
func (s *Service) UpdateRuntimeConfig(ctx context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	if cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		s.log.Info("kubelet pod CIDR (berth's networks keep their own subnets)", "podCIDR", cidr)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}

// firstForeignConflist is the name of the first conflist in dir (by file
// name, as kubelet runtimes pick) that berth did not write, "" if none.
func firstForeignConflist(dir string) string {
	if dir == "" {
		return ""
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.conflist"))
	sort.Strings(files)
	for _, f := range files {
		base := filepath.Base(f)
		if base == "berth.conflist" || strings.HasPrefix(base, "berth_") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var c struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(b, &c) == nil && c.Name != "" {
			return c.Name
		}
	}
	return ""
}

// supportsRRO says whether the handler's runtime takes the "rro" mount
// option (recursive read-only, mount_setattr: runc 1.1 on Linux 5.12+),
// as its `features` command lists; asked once per handler.
func (s *Service) supportsRRO(handler string) bool {
	name := handler
	if name == "" {
		name = s.opts.DefaultRuntime
	}
	if name == "" {
		name = "runc"
	}
	if v, ok := s.rro.Load(name); ok {
		return v.(bool)
	}
	ok := false
	if bin, err := exec.LookPath(name); err == nil {
		out, err := exec.Command(bin, "features").Output()
		ok = err == nil && strings.Contains(string(out), `"rro"`)
	}
	s.rro.Store(name, ok)
	return ok
}
