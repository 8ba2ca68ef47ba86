package test

import (
	"strings"
	"testing"
)

// TestRun_MountOptions: a mount option means the same from `berth run
// --mount` as from a manifest (oci.ParseMount decides both): size= bounds
// a tmpfs, ro makes a mount read-only, and an option berth does not know
// is refused naming it (exit 2), never dropped.
func TestRun_MountOptions(t *testing.T) {
	d := runDaemon(t)
	r := d.CLI("run", "--rm", "--mount", "type=tmpfs,target=/scratch,size=16Mi", "busybox:latest", "mnt-size", "--",
		"sh", "-c", "grep ' /scratch ' /proc/mounts")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "size=16384k") {
		t.Errorf("tmpfs size=16Mi: exit %d, mounts %q, stderr %q; want size=16384k", r.ExitCode, r.Stdout, r.Stderr)
	}
	r = d.CLI("run", "--rm", "--mount", "type=tmpfs,target=/scratch,ro", "busybox:latest", "mnt-ro", "--",
		"sh", "-c", "touch /scratch/x")
	if r.ExitCode == 0 {
		t.Errorf("a write to a ro tmpfs succeeded: %+v", r)
	}
	r = d.CLI("run", "--rm", "--mount", "type=tmpfs,target=/scratch,exec", "busybox:latest", "mnt-bad", "--", "true")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, `"exec"`) {
		t.Errorf("unknown option exec: exit %d, stderr %q; want 2 naming it", r.ExitCode, r.Stderr)
	}
}
