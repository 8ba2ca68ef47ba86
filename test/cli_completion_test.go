package test

import (
	"bytes"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// TestCLI_CompletionAsksBerthd: shell completion (cobra's __complete, what
// the bash, zsh and fish scripts call) offers the task and container IDs,
// image references, declared object names, networks, snapshots and
// namespaces berthd has, leaves out the IDs already typed, and with
// berthd down, or hung, offers nothing, prints nothing and returns fast.
func TestCLI_CompletionAsksBerthd(t *testing.T) {
	d := runDaemon(t)
	d.MustCLI(t, "run", "-d", "busybox:latest", "cmp-box", "--", "sleep", "1000")
	d.MustCLI(t, "container", "create", "busybox:latest", "cmp-idle", "--", "true")
	waitStatus(t, d, "cmp-box", "running")
	if r := d.CLIStdin(stoppedTask("cmp-task", "cmp"), "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	const noFile = ":4\n" // cobra.ShellCompDirectiveNoFileComp
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"task IDs", []string{"task", "kill", ""}, "cmp-box\n" + noFile},
		{"container IDs", []string{"container", "rm", "cmp"}, "cmp-box\ncmp-idle\n" + noFile},
		{"IDs already given are left out", []string{"container", "rm", "cmp-box", "cmp"}, "cmp-idle\n" + noFile},
		{"exec: the ID, then nothing", []string{"exec", "cmp-box", ""}, noFile},
		{"logs", []string{"logs", "cmp-i"}, "cmp-idle\n" + noFile},
		{"image references", []string{"run", "busy"}, "busybox:latest\n" + noFile},
		{"image rm", []string{"image", "rm", ""}, "busybox:latest\n" + noFile},
		{"kinds", []string{"get", "s"}, "sources\n" + noFile},
		{"declared names", []string{"describe", "task", ""}, "cmp-task\n" + noFile},
		{"networks", []string{"network", "inspect", "b"}, "bridge\n" + noFile},
		{"snapshots", []string{"snapshot", "info", "cmp-b"}, "cmp-box\n" + noFile},
		{"namespaces of -n", []string{"task", "ls", "-n", "def"}, "default\n" + noFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.CLI(append([]string{"__complete"}, tc.args...)...)
			if r.ExitCode != 0 || r.Stdout != tc.want {
				t.Errorf("want stdout %q\n%s", tc.want, r)
			}
		})
	}

	complete := func(t *testing.T, address string) (string, string, time.Duration) {
		t.Helper()
		cmd := exec.Command(testutil.Bin(t, "berth"), "--address", address, "__complete", "task", "rm", "")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("__complete: %v\n%s", err, errb.String())
		}
		return out.String(), errb.String(), time.Since(start)
	}
	const quiet = "Completion ended with directive: ShellCompDirectiveNoFileComp\n"
	t.Run("berthd down", func(t *testing.T) {
		out, errs, took := complete(t, filepath.Join(t.TempDir(), "none.sock"))
		if out != noFile || errs != quiet || took > 500*time.Millisecond {
			t.Errorf("got stdout %q stderr %q in %v, want %q, only cobra's note, fast", out, errs, took, noFile)
		}
	})
	t.Run("berthd hung", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "hung.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close() // accepts (the kernel's backlog) and never answers
		out, errs, took := complete(t, sock)
		if out != noFile || errs != quiet || took > 2*time.Second {
			t.Errorf("got stdout %q stderr %q in %v, want %q within the completion deadline", out, errs, took, noFile)
		}
	})
}
