package test

import (
	"testing"
)

// TestCLI_DashDash: "--" ends berth's flags and never reaches the container
// as a program name, in run, container create, task exec and exec; exec
// attaches stdin only with -i.
func TestCLI_DashDash(t *testing.T) {
	d := runDaemon(t)
	d.MustCLI(t, "run", "-d", "busybox:latest", "box", "--", "sleep", "1000")
	waitStatus(t, d, "box", "running")
	for _, tc := range []struct {
		name    string
		stdin   string
		args    []string
		wantOut string
	}{
		{"run", "", []string{"run", "--rm", "busybox:latest", "dd-run", "--", "echo", "-n", "ran"}, "ran"},
		{"run flags after --", "", []string{"run", "--rm", "busybox:latest", "dd-run2", "--", "sh", "-c", "echo $0", "--env"}, "--env\n"},
		{"task exec", "", []string{"task", "exec", "box", "--", "echo", "-n", "task-exec"}, "task-exec"},
		{"exec", "", []string{"exec", "box", "--", "echo", "-n", "exec"}, "exec"},
		{"exec without --", "", []string{"exec", "-e", "X=y", "-w", "/tmp", "box", "sh", "-c", "echo $X $PWD"}, "y /tmp\n"},
		{"exec without -i gets no stdin", "typed", []string{"exec", "box", "cat"}, ""},
		{"exec -i attaches stdin", "typed", []string{"exec", "-i", "box", "cat"}, "typed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.CLIStdin(tc.stdin, tc.args...)
			if r.ExitCode != 0 || r.Stdout != tc.wantOut {
				t.Fatalf("stdout %q, want %q\n%s", r.Stdout, tc.wantOut, r)
			}
		})
	}
	t.Run("container create", func(t *testing.T) {
		d.MustCLI(t, "container", "create", "busybox:latest", "dd-create", "--", "echo", "-n", "created")
		if out := d.MustCLI(t, "task", "start", "dd-create"); out != "created" {
			t.Fatalf("task start: %q, want created", out)
		}
	})
	t.Run("exec with nothing after --", func(t *testing.T) {
		r := d.CLI("exec", "box", "--")
		if r.ExitCode != 2 || r.Stderr != "berth: exec box: no command given after --\n" {
			t.Fatalf("want exit 2 and a clear error\n%s", r)
		}
	})
}
