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
// The contract with berthd (file names, the exit record, the launcher, the
// error wire codes) is package shim/bundle, which both sides import, so
// berthd never links this server. Files in the bundle directory:
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
// Stdio: the init's stdout and stderr always go to the output log; when
// Create names stdout/stderr FIFOs (created and opened by an attaching
// client, as ctr does) output is copied there too, but a client that stops
// reading for 2 s is dropped rather than stalling the container. stdin is
// copied from its FIFO until the client closes it or CloseIO. With
// terminal set the shim receives the pty master over runc's console socket
// and copies it to the log (stream stdout) and the stdout FIFO. An exec's
// output goes only to its own FIFOs, never to the container log.
//
// Memory: berth-shim runs with GOMAXPROCS=1, GC percent 25, a 4 MiB soft
// memory limit, and hands its start-up code pages back to the kernel once
// it serves and once the task started (MADV_PAGEOUT; see trim.go). It
// drives runc with os/exec rather than go-runc and maps errors to wire codes
// itself rather than with errgrpc (which brings gogo/protobuf). Measured by
// TestShim_Memory (VmRSS with a running sleep container): about 5.2 MiB
// after Start, 5.7 MiB after further calls, of which about 2.3 MiB is
// anonymous and the rest the binary's pages, which every shim on a node
// shares. ttrpc itself brings logrus, grpc/status and protobuf reflection.
//
// The exit status follows the shell: the exit code, or 128+signal. OOM is
// reported when the memory cgroup's oom_kill count rose while the task ran
// (v1 memory.oom_control, v2 memory.events).
package shim
