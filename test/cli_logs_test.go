package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/test/harness"
)

// logsFollowManifest is a Container whose every run prints one line and
// exits 3, and its Task with policy.
func logsFollowManifest(t *testing.T, name, policy string) string {
	return imageManifest(t) + fmt.Sprintf(`---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: %[1]s}
spec:
  image: busybox
  command: [sh, -c, 'echo "run of %[1]s"; sleep 1; exit 3']
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, restartPolicy: %[2]s, stopTimeout: 1s}
`, name, policy)
}

// TestCLI_LogsFollowRestarts: logs -f of a declared Task follows it across
// the restarts its policy makes, with a marker line on stdout before each
// new run's output, and ends (exit 0) once the task exits and will not be
// restarted.
func TestCLI_LogsFollowRestarts(t *testing.T) {
	d := startDecl(t, "")
	const name = "lf-restarts"
	if r := d.CLIStdin(logsFollowManifest(t, name, "OnFailure"), "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	// logs needs the container made (before, it is not found).
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		r := d.CLI("logs", name)
		return strings.Contains(r.Stdout, "run of "), r.String()
	})
	f := startStreaming(t, d, "logs", "-f", name)
	f.waitFor(t, "two restart markers", func(out string) bool { return strings.Count(out, "(its last run exited with status 3) ---\n") >= 2 })
	// Never restarts it no more: the run under way is the last one.
	if r := d.CLIStdin(logsFollowManifest(t, name, "Never"), "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("logs -f still running 30s after the policy became Never\nstdout:\n%s", f.stdout.String())
	}
	if code := f.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d, want 0\nstderr:\n%s", code, f.stderr.String())
	}
	marker := regexp.MustCompile(`^--- berth: ` + name + ` restarted at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(its last run exited with status 3\) ---$`)
	lines := strings.Split(strings.TrimSuffix(f.stdout.String(), "\n"), "\n")
	// The log before the follower began holds the earlier runs' lines,
	// without markers (none is recorded): alternation starts at the run
	// before the first marker.
	for len(lines) > 1 && lines[1] == "run of "+name {
		lines = lines[1:]
	}
	ok := len(lines) >= 5 && len(lines)%2 == 1 && lines[0] == "run of "+name
	for i, l := range lines {
		if i%2 == 0 && l != "run of "+name || i%2 == 1 && !marker.MatchString(l) {
			ok = false
		}
	}
	if !ok {
		t.Errorf("want the runs' lines with a marker between each two, a run's last:\n%s\nstderr:\n%s", f.stdout.String(), f.stderr.String())
	}
	if r := d.CLI("logs", "-f", name); r.ExitCode != 0 || strings.Contains(r.Stdout, "--- berth") {
		t.Errorf("logs -f of a task that will not run again: want its log at once, no marker\n%s", r)
	}
}

// TestCLI_LogsFollowRecreation: logs -f follows a declared Task across the
// recreation of its Container (a changed spec), even when its restart
// policy would not restart the exit the recreation's stop caused (0 under
// OnFailure), and ends once the objects are deleted.
func TestCLI_LogsFollowRecreation(t *testing.T) {
	d := startDecl(t, "")
	const name = "lf-recreate"
	img := imageManifest(t) + "---\n"
	if r := d.CLIStdin(img+taskManifest(name, "one", "OnFailure"), "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	pid := waitTask(t, d, name, 0).task().Pid
	f := startStreaming(t, d, "logs", "-f", name)
	f.waitFor(t, "the first run's line", func(out string) bool { return out == "greeting=one\n" })
	if r := d.CLIStdin(img+taskManifest(name, "two", "OnFailure"), "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	waitTask(t, d, name, pid)
	marker := regexp.MustCompile(`^greeting=one\n--- berth: ` + name + ` restarted at \S+Z \(its last run exited with status 0\) ---\ngreeting=two\n$`)
	f.waitFor(t, "the marker and the new run's line", marker.MatchString)
	if r := d.CLIStdin(img+taskManifest(name, "two", "OnFailure"), "delete", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("logs -f still running 30s after the Task was deleted\nstdout:\n%s", f.stdout.String())
	}
	if code := f.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d, want 0\nstderr:\n%s", code, f.stderr.String())
	}
}
