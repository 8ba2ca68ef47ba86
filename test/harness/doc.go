// Package harness starts the real things berth's end-to-end tests run
// against: OCI registries (Debian's docker-registry as a process, or
// go-containerregistry's in-process one), the shared test images pushed into
// them, and berthd processes on a fresh root and state, driven through the
// berth CLI.
//
// Everything a helper starts is stopped by the test that started it, by PID,
// in t.Cleanup: daemons get SIGTERM then SIGKILL after a deadline; berth-shim
// processes and runc containers that name the daemon's root or state are
// killed; mounts left under them are unmounted. Logs of the processes are
// written to files and printed when the test fails. Children get
// Pdeathsig=SIGKILL, so a test binary killed by -timeout leaves no berthd or
// registry behind (a test that ends a goroutine while it holds
// runtime.LockOSThread could end a child early this way: unlock first).
//
// A typical end-to-end test:
//
//	reg := harness.StartRegistry(t)
//	refs := harness.PushTestImages(t, reg.Addr)
//	d := harness.StartDaemon(t, harness.DaemonOptions{})
//	d.MustCLI(t, "-n", "default", "apply", "-f", manifestFile)
//	harness.Eventually(t, 30*time.Second, func() (bool, string) {
//		r := d.CLI("-n", "default", "get", "task", "web", "-o", "json")
//		return strings.Contains(r.Stdout, `"Running"`), r.String()
//	})
//	_ = refs["busybox"] // "127.0.0.1:PORT/library/busybox:latest"
//
// The helpers take the prerequisites from internal/testutil: a missing
// binary, test image or root skips the test, and fails it under CI=true.
package harness
