package test

import (
	"fmt"
	"strings"
	"testing"
)

// containerManifest is taskManifest's Container alone.
func containerManifest(name, greeting string) string {
	m := taskManifest(name, greeting, "Always")
	return m[:strings.Index(m, "---\napiVersion: berth.dev/v1\nkind: Task")]
}

// TestCLI_ApplySaysTaskRestarts: a changed Container is recreated, and
// the Task running in it restarted: apply says "restarted" with why, not
// "unchanged", and diff shows the restart, whether the Task is in the
// file or only in force.
func TestCLI_ApplySaysTaskRestarts(t *testing.T) {
	d := startDecl(t, "")
	const name = "ar-web"
	img := imageManifest(t) + "---\n"
	if r := d.CLIStdin(img+taskManifest(name, "one", "Always"), "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	pid := waitTask(t, d, name, 0).task().Pid
	restart := fmt.Sprintf("Task default/%s\n  => restart (container): its Container %s will be recreated\n", name, name)
	t.Run("diff with the Task", func(t *testing.T) {
		r := d.CLIStdin(img+taskManifest(name, "two", "Always"), "diff", "-f", "-")
		if r.ExitCode != 1 || !strings.Contains(r.Stdout, restart) {
			t.Errorf("want exit 1 and %q\n%s", restart, r)
		}
	})
	t.Run("diff of the Container alone", func(t *testing.T) {
		r := d.CLIStdin(img+containerManifest(name, "two"), "diff", "-f", "-")
		if r.ExitCode != 1 || !strings.Contains(r.Stdout, restart) {
			t.Errorf("want exit 1 and %q\n%s", restart, r)
		}
	})
	t.Run("apply --dry-run", func(t *testing.T) {
		r := d.CLIStdin(img+taskManifest(name, "two", "Always"), "apply", "-f", "-", "--dry-run")
		want := fmt.Sprintf("Image default/busybox unchanged (dry run)\nContainer default/%[1]s configured (dry run)\nTask default/%[1]s restarted: its Container default/%[1]s is recreated (dry run)\n", name)
		if r.ExitCode != 0 || r.Stdout != want {
			t.Errorf("want\n%s%s", want, r)
		}
	})
	t.Run("apply", func(t *testing.T) {
		r := d.CLIStdin(img+containerManifest(name, "two"), "apply", "-f", "-")
		want := fmt.Sprintf("Image default/busybox unchanged\nContainer default/%[1]s configured\nTask default/%[1]s restarted: its Container default/%[1]s is recreated\n", name)
		if r.ExitCode != 0 || r.Stdout != want {
			t.Errorf("want\n%s%s", want, r)
		}
		waitTask(t, d, name, pid)
		r = d.CLIStdin(img+taskManifest(name, "two", "Always"), "apply", "-f", "-")
		want = fmt.Sprintf("Image default/busybox unchanged\nContainer default/%[1]s unchanged\nTask default/%[1]s unchanged\n", name)
		if r.ExitCode != 0 || r.Stdout != want {
			t.Errorf("once recreated, nothing to restart: want\n%s%s", want, r)
		}
	})
}

// TestCLI_AtomicApplySaysTaskRestarts: apply --atomic reports the Task
// whose Container it recreates as restarted, as apply does.
func TestCLI_AtomicApplySaysTaskRestarts(t *testing.T) {
	d := startDecl(t, "")
	const name = "ar-atomic"
	img := imageManifest(t) + "---\n"
	if r := d.CLIStdin(img+taskManifest(name, "one", "Always"), "apply", "-f", "-", "--atomic", "--applyset", "ara", "--timeout", "30s"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	r := d.CLIStdin(img+taskManifest(name, "two", "Always"), "apply", "-f", "-", "--atomic", "--applyset", "ara", "--timeout", "30s")
	want := fmt.Sprintf("Task default/%[1]s restarted: its Container default/%[1]s is recreated\n", name)
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, want) || !strings.Contains(r.Stdout, "Container default/"+name+" configured\n") {
		t.Errorf("want %q\n%s", want, r)
	}
}
