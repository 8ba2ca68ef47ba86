package oci

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultCaps is containerd's default capability set (oci.defaultUnixCaps
// and CRI's default): enough for a conventional init and daemons, without
// CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_SYS_PTRACE or CAP_SYS_MODULE.
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// DefaultCapabilities returns the default capability set, a fresh copy:
// the node policy counts any other capability in a spec as added.
func DefaultCapabilities() []string { return append([]string(nil), defaultCaps...) }

// capabilities fills bounding, effective and permitted with the default
// set and leaves inheritable and ambient empty: a non-empty inheritable set
// lets a file capability of an image binary grant more than the process
// had (GHSA-2qjp-425j-52j9, CVE-2022-24769).
func capabilities() *specs.LinuxCapabilities {
	c := func() []string { return append([]string(nil), defaultCaps...) }
	return &specs.LinuxCapabilities{Bounding: c(), Effective: c(), Permitted: c()}
}

// maskedPaths are containerd's: kernel interfaces a container must not
// read, covered with /dev/null or an empty read-only tmpfs.
var maskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// readonlyPaths are containerd's: kernel interfaces a container may read
// but not write.
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// standardMounts are containerd's default mounts plus CRI's read-only
// cgroup mount.
func standardMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// hostNetworkFiles are bind-mounted read-only from the host with host
// networking, so names resolve as they do on the host.
var hostNetworkFiles = []string{"/etc/hosts", "/etc/resolv.conf"}

func ptr[T any](v T) *T { return &v }

// deviceRules are containerd's device cgroup: deny everything, then allow
// mknod of any node (the node is useless without the rule below) and use of
// null, zero, full, random, urandom, tty, console, ptmx, the pts and tun.
func deviceRules() []specs.LinuxDeviceCgroup {
	allow := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			r.Major = ptr(major)
		}
		if minor >= 0 {
			r.Minor = ptr(minor)
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow("c", -1, -1, "m"),
		allow("b", -1, -1, "m"),
		allow("c", 1, 3, "rwm"),    // /dev/null
		allow("c", 1, 8, "rwm"),    // /dev/random
		allow("c", 1, 7, "rwm"),    // /dev/full
		allow("c", 5, 0, "rwm"),    // /dev/tty
		allow("c", 1, 5, "rwm"),    // /dev/zero
		allow("c", 1, 9, "rwm"),    // /dev/urandom
		allow("c", 5, 1, "rwm"),    // /dev/console
		allow("c", 136, -1, "rwm"), // /dev/pts/*
		allow("c", 5, 2, "rwm"),    // /dev/ptmx
		allow("c", 10, 200, "rwm"), // /dev/net/tun
	}
}

// defaultNofile is containerd's RLIMIT_NOFILE for a container.
const defaultNofile = 1024

// rlimits is containerd's RLIMIT_NOFILE 1024:1024, never above berth's own
// hard limit: raising a hard limit needs CAP_SYS_RESOURCE in the initial
// user namespace, which berth's root may not have (it does not in some
// sandboxes), and then runc's setrlimit fails the whole container.
func rlimits() ([]specs.POSIXRlimit, error) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		return nil, fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	return nofile(cur.Max), nil
}

// nofile is the RLIMIT_NOFILE rule under a hard limit of max.
func nofile(max uint64) []specs.POSIXRlimit {
	n := min(uint64(defaultNofile), max)
	return []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: n, Soft: n}}
}
