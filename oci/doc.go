// Package oci turns an image config plus a container's settings into an OCI
// runtime spec (github.com/opencontainers/runtime-spec/specs-go) and writes
// it as a bundle's config.json.
//
// It is a leaf: it knows nothing of manifests, stores or shims. The
// controller maps a Container manifest onto [Settings], calls [Generate]
// with the unpacked rootfs and the image's config, and hands the result to
// [WriteBundle]; the shim reads it back with [ReadBundle] and runs the
// binary [Runtime] resolved.
//
// # What the spec contains
//
// [Generate] starts from containerd's default Linux spec and CRI's
// hardening: the pid, ipc, uts, mount and network namespaces (network
// omitted for host networking); the standard mounts (/proc, /dev tmpfs,
// /dev/pts, /dev/shm, /dev/mqueue, /sys read-only, /sys/fs/cgroup
// read-only); containerd's default capability set in the bounding,
// effective and permitted sets with the inheritable and ambient sets empty;
// containerd's masked and read-only /proc and /sys paths; no_new_privs;
// moby's default seccomp profile (default action SCMP_ACT_ERRNO); the
// device cgroup deny-all with containerd's allow list; RLIMIT_NOFILE
// 1024:1024 clamped to the caller's own hard limit, since the root berth
// runs as may not be allowed to raise one.
//
// # Image config is data
//
// Nothing in the image config decides anything on the host. USER is parsed
// numerically with range checks (0..2^31-1) first and only then looked up by
// name in the rootfs's /etc/passwd and /etc/group, which are opened inside
// the rootfs with symlinks scoped to it (openat2 RESOLVE_IN_ROOT through
// filepath-securejoin's pathrs-lite), as O_PATH first so that a FIFO or a
// device is refused before it is ever opened for reading, and read
// size-bounded (1 MiB). WORKDIR must be a clean absolute path outside
// /proc. Env is bounded to 1 MiB in all, and so are the args. Labels are
// never acted on. VOLUME is ignored for now: a volume the image declares
// is simply part of the rootfs, as `docker run` without -v would leave it
// minus the copy-up; the controller may add explicit mounts instead.
//
// # Command line
//
// The process's args are Entrypoint followed by Cmd, with Docker's and
// Kubernetes' override rules: [Settings.Args] replaces the image's Cmd;
// a non-nil [Settings.Entrypoint] replaces the image's Entrypoint and also
// drops the image's Cmd (so `entrypoint: [sh]` alone runs plain sh, not sh
// with the image's default arguments). An empty result is an error.
//
// # Cgroups
//
// berth uses runc's cgroupfs driver, which on this cgroup v1 hybrid host
// (v1 controllers plus the unified hierarchy at /sys/fs/cgroup/unified)
// reads an absolute cgroupsPath relative to each controller's hierarchy
// root. [DefaultCgroupsPath] is "/berth/<namespace>/<id>", so a container's
// memory cgroup is /sys/fs/cgroup/memory/berth/<namespace>/<id>; all of
// berth's containers sit under one /berth parent per controller, which makes
// them easy to find and to clean up. The systemd "slice:prefix:name" form is
// refused (there is no systemd driver here). No cgroup namespace is created,
// as containerd does not on v1.
//
// # Bundles
//
// [WriteBundle] writes config.json with mode 0600 into a 0700 directory by
// temp file, fsync, rename and directory fsync, so that after a power cut
// a bundle holds either the old spec or the new one, never a torn file.
package oci
