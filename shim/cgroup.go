package shim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroup locates a container's cgroup and reads its counters straight from
// the files: the few numbers the shim reports do not justify a cgroups
// library in a process that runs once per container.
type cgroup struct {
	v2    bool
	paths map[string]string // v1: controller → directory; v2: "" → directory
}

const cgroupRoot = "/sys/fs/cgroup"

// cgroupOf reads /proc/<pid>/cgroup. It must be called while pid lives;
// the cgroup itself stays until the runtime deletes the container.
func cgroupOf(pid int) (*cgroup, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, fmt.Errorf("read cgroup of %d: %w", pid, err)
	}
	return parseCgroup(b)
}

// cgroupOfSpec is the cgroup the bundle's config.json names (cgroupfs
// paths, as berth writes them), for a process that may be gone already:
// one `runc run --detach` of a short command can exit before the shim
// looks at /proc.
func cgroupOfSpec(bundleDir string) (*cgroup, error) {
	b, err := os.ReadFile(filepath.Join(bundleDir, "config.json"))
	if err != nil {
		return nil, err
	}
	var sp struct {
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &sp); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	p := sp.Linux.CgroupsPath
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("cgroupsPath %q: not a cgroupfs path", p)
	}
	// The same lines /proc/<pid>/cgroup would hold for it.
	return parseCgroup([]byte("0::" + p + "\n1:memory:" + p + "\n2:cpuacct:" + p + "\n3:pids:" + p + "\n4:freezer:" + p + "\n"))
}

func parseCgroup(b []byte) (*cgroup, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &fs); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", cgroupRoot, err)
	}
	cg := &cgroup{v2: fs.Type == unix.CGROUP2_SUPER_MAGIC, paths: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if cg.v2 {
			if f[0] == "0" {
				cg.paths[""] = filepath.Join(cgroupRoot, f[2])
			}
			continue
		}
		for _, ctrl := range strings.Split(f[1], ",") {
			switch ctrl {
			case "memory", "cpuacct", "pids", "freezer":
				cg.paths[ctrl] = filepath.Join(cgroupRoot, ctrl, f[2])
			}
		}
	}
	return cg, nil
}

func (c *cgroup) file(ctrl, v1, v2 string) string {
	if c.v2 {
		return filepath.Join(c.paths[""], v2)
	}
	return filepath.Join(c.paths[ctrl], v1)
}

// readUint reads a file holding one number; "max" and absent files are 0.
func readUint(p string) uint64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// readKey reads "key value" lines (memory.events, cpu.stat, oom_control).
func readKey(p, key string) uint64 {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// oomKills is the memory cgroup's count of OOM kills.
func (c *cgroup) oomKills() uint64 {
	if c == nil {
		return 0
	}
	if c.v2 {
		return readKey(c.file("", "", "memory.events"), "oom_kill")
	}
	return readKey(c.file("memory", "memory.oom_control", ""), "oom_kill")
}

// stats are the counters Stats reports. A v1 limit of "no limit" is a huge
// number; it is reported as 0 (unlimited), as v2's "max" is.
type stats struct {
	cpuNs, memUsage, memLimit, memMax, oomKills, pids, pidsLimit uint64
}

const unlimitedV1 = 1 << 62

func (c *cgroup) stats() stats {
	var s stats
	if c.v2 {
		s.cpuNs = readKey(c.file("", "", "cpu.stat"), "usage_usec") * 1000
		s.memUsage = readUint(c.file("", "", "memory.current"))
		s.memLimit = readUint(c.file("", "", "memory.max"))
		s.memMax = readUint(c.file("", "", "memory.peak"))
	} else {
		s.cpuNs = readUint(c.file("cpuacct", "cpuacct.usage", ""))
		s.memUsage = readUint(c.file("memory", "memory.usage_in_bytes", ""))
		s.memLimit = readUint(c.file("memory", "memory.limit_in_bytes", ""))
		s.memMax = readUint(c.file("memory", "memory.max_usage_in_bytes", ""))
	}
	if s.memLimit >= unlimitedV1 {
		s.memLimit = 0
	}
	s.oomKills = c.oomKills()
	s.pids = readUint(c.file("pids", "pids.current", "pids.current"))
	s.pidsLimit = readUint(c.file("pids", "pids.max", "pids.max"))
	return s
}

// ownPIDNamespace says whether the bundle's container gets a new PID
// namespace (one with no path to join); false when unsure.
func ownPIDNamespace(bundleDir string) bool {
	b, err := os.ReadFile(filepath.Join(bundleDir, "config.json"))
	if err != nil {
		return false
	}
	var sp struct {
		Linux struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	}
	if json.Unmarshal(b, &sp) != nil {
		return false
	}
	for _, ns := range sp.Linux.Namespaces {
		if ns.Type == "pid" {
			return ns.Path == ""
		}
	}
	return false
}
