package test

import (
	"strings"
	"testing"
)

// TestCLI_RmManyGoesOn: container rm, image rm and task rm with several IDs
// remove what they can, go on past the IDs that fail, and exit 2 naming
// every failure.
func TestCLI_RmManyGoesOn(t *testing.T) {
	d := runDaemon(t)
	d.MustCLI(t, "container", "create", "busybox:latest", "rm-ctr", "--", "true")
	d.MustCLI(t, "image", "tag", "busybox:latest", "example.local/rm-extra:1")
	d.MustCLI(t, "container", "create", "busybox:latest", "rm-stopped", "--", "true")
	d.MustCLI(t, "task", "start", "rm-stopped")
	waitStatus(t, d, "rm-stopped", "stopped")
	d.MustCLI(t, "run", "-d", "busybox:latest", "rm-running", "--", "sleep", "1000")
	waitStatus(t, d, "rm-running", "running")

	for _, tc := range []struct {
		name     string
		args     []string
		failed   []string // IDs the error output must name
		stdout   string
		gone     []string // a command that must now fail
		remained []string // a command that must still succeed
	}{
		{"container rm", []string{"container", "rm", "missing1", "rm-ctr", "missing2"}, []string{"missing1", "missing2"}, "",
			[]string{"container", "info", "rm-ctr"}, nil},
		{"image rm", []string{"image", "rm", "missing1", "example.local/rm-extra:1", "missing2"}, []string{"missing1", "missing2"},
			"example.local/rm-extra:1\n", []string{"image", "inspect", "example.local/rm-extra:1"}, []string{"image", "inspect", "busybox:latest"}},
		// A running task is not deleted without -f: that is a failure too.
		{"task rm", []string{"task", "rm", "missing1", "rm-stopped", "rm-running"}, []string{"missing1", "rm-running"}, "",
			nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.CLI(tc.args...)
			if r.ExitCode != 2 || r.Stdout != tc.stdout {
				t.Fatalf("want exit 2 and stdout %q\n%s", tc.stdout, r)
			}
			for _, id := range tc.failed {
				if !strings.Contains(r.Stderr, id) {
					t.Errorf("stderr does not name %s\n%s", id, r)
				}
			}
			if tc.gone != nil {
				if g := d.CLI(tc.gone...); g.ExitCode == 0 {
					t.Errorf("still there after rm\n%s", g)
				}
			}
			if tc.remained != nil {
				d.MustCLI(t, tc.remained...)
			}
		})
	}
	got := tasks(t, d)
	if _, ok := got["rm-stopped"]; ok {
		t.Errorf("task rm-stopped still listed: %+v", got)
	}
	if got["rm-running"].Status != "running" {
		t.Errorf("task rm-running: %+v, want it left running", got["rm-running"])
	}
}
