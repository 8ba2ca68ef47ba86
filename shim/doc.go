// Package shim is berth's per-container shim: it serves the Task API of
// api/shim/v1 over ttrpc for one container and drives the OCI runtime
// (runc) over that container's bundle.
//
// berthd prepares the bundle (config.json, rootfs/ already mounted) and
// starts `berth-shim` through shim/client. The shim detaches (own session,
// reparented to init), so it outlives berthd; berthd reconnects to it by
// the bundle path. The shim is a child subreaper: runc leaves the
// container's processes to it and it reaps them, matching exits to the
// init and exec pids.
//
// Files in the bundle directory:
//
//	<bundle>/
//	├── config.json   OCI runtime spec (berthd)
//	├── rootfs/       mounted by berthd; the shim never mounts
//	├── shim.sock     ttrpc socket, 0600
//	├── shim.pid      the shim's pid, written once it serves, removed on clean exit
//	├── shim.log      the shim's own log (its stderr)
//	├── runc.log      runc's JSON error log
//	├── init.pid      the container init's pid (runc --pid-file)
//	├── exit.json     the init's exit: {pid, exit_status, exited_at, oom_killed},
//	│                 written via temp+fsync+rename+dir fsync BEFORE Wait answers
//	└── output.log    the container's output log (CRI format, see shim/logs)
//	                  unless Create names another path; rotated as output.log.1 …
//
// The exit status follows the shell: the exit code, or 128+signal. OOM is
// reported when the memory cgroup's oom_kill count rose while the task ran
// (v1 memory.oom_control, v2 memory.events).
package shim
