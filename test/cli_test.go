package test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/test/harness"
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

// stoppedTask is a Task object labelled app, for tests of what apply and
// prune do to the declared set (its container need not exist).
func stoppedTask(name, app string) string {
	return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Task
metadata: {name: %s, labels: {app: %s}}
spec: {container: %[1]s, state: Stopped}
---
`, name, app)
}

func declaredNames(t *testing.T, d *harness.Daemon) string {
	t.Helper()
	var names []string
	for name := range getObjects(t, d, "tasks") {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// TestCLI_ApplySetPrune: two unrelated apply sets in one namespace; pruning
// one leaves the other; --prune needs a scope; diff --prune shows what
// would go and exits 1.
func TestCLI_ApplySetPrune(t *testing.T) {
	d := startDecl(t, "")
	shop := stoppedTask("shop-a", "shop") + stoppedTask("shop-b", "shop")
	blog := stoppedTask("blog-a", "blog")
	if r := d.CLIStdin(shop, "apply", "-f", "-", "--applyset", "shop"); r.ExitCode != 0 ||
		r.Stdout != "Task default/shop-a created\nTask default/shop-b created\n" {
		t.Fatalf("%s", r)
	}
	if r := d.CLIStdin(blog, "apply", "-f", "-", "--applyset", "blog"); r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	if o := getObjects(t, d, "tasks")["shop-a"]; o.Metadata.Labels["berth.dev/applyset"] != "shop" || o.Metadata.Labels["app"] != "shop" {
		t.Errorf("shop-a labels %v: want berth.dev/applyset=shop beside app=shop", o.Metadata.Labels)
	}

	t.Run("prune without a scope is refused", func(t *testing.T) {
		for _, verb := range []string{"apply", "diff"} {
			r := d.CLIStdin(shop, verb, "-f", "-", "--prune")
			if r.ExitCode != 2 || r.Stderr != "berth: --prune needs a scope: --applyset NAME or -l SELECTOR (without one it would delete what others applied)\n" {
				t.Errorf("%s", r)
			}
		}
	})
	shopA := stoppedTask("shop-a", "shop")
	t.Run("diff --prune shows what would go", func(t *testing.T) {
		r := d.CLIStdin(shopA, "diff", "-f", "-", "--applyset", "shop", "--prune")
		if r.ExitCode != 1 || !strings.Contains(r.Stdout, "Task default/shop-b\n") ||
			!strings.Contains(r.Stdout, "  => delete: pruned: in apply set \"shop\", not in the given set\n") ||
			strings.Contains(r.Stdout, "blog") || strings.Contains(r.Stdout, "Task default/shop-a") {
			t.Errorf("want exit 1 and shop-b's deletion only: %s", r)
		}
		if r := d.CLIStdin(shopA+stoppedTask("shop-b", "shop"), "diff", "-f", "-", "--applyset", "shop", "--prune"); r.ExitCode != 0 {
			t.Errorf("diff --prune of the whole set: want exit 0: %s", r)
		}
	})
	t.Run("pruning one set leaves the other", func(t *testing.T) {
		r := d.CLIStdin(shopA, "apply", "-f", "-", "--applyset", "shop", "--prune")
		if r.ExitCode != 0 || r.Stdout != "Task default/shop-a unchanged\nTask default/shop-b pruned\n" {
			t.Fatalf("%s", r)
		}
		if got := declaredNames(t, d); got != "blog-a shop-a" {
			t.Errorf("declared tasks %q, want blog-a shop-a", got)
		}
		if r := d.CLIStdin(shopA, "diff", "-f", "-", "--applyset", "shop", "--prune"); r.ExitCode != 0 {
			t.Errorf("diff --prune after the prune: want exit 0: %s", r)
		}
	})
	t.Run("an object of another set is not taken over", func(t *testing.T) {
		r := d.CLIStdin(blog, "apply", "-f", "-", "--applyset", "shop")
		if r.ExitCode != 2 || !strings.HasPrefix(r.Stderr, "Task default/blog-a conflict: Task default/blog-a belongs to apply set \"blog\"\n") {
			t.Errorf("%s", r)
		}
	})
	t.Run("selector scope", func(t *testing.T) {
		r := d.CLIStdin(stoppedTask("blog-b", "blog")+shopA, "apply", "-f", "-", "-l", "app=blog", "--prune")
		if r.ExitCode != 0 || r.Stdout != "Task default/blog-a pruned\nTask default/blog-b created\n" {
			t.Fatalf("want only app=blog applied and pruned: %s", r)
		}
		if got := declaredNames(t, d); got != "blog-b shop-a" {
			t.Errorf("declared tasks %q, want blog-b shop-a", got)
		}
	})
}

// TestCLI_LogsWindow: logs -t prefixes each line with when it was written,
// and --since/--until (a time or a duration ago) select by that time, as
// docker logs does.
func TestCLI_LogsWindow(t *testing.T) {
	d := runDaemon(t)
	d.MustCLI(t, "run", "busybox:latest", "lw", "--", "sh", "-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three")
	r := d.CLI("logs", "-t", "lw")
	if r.ExitCode != 0 {
		t.Fatal(r)
	}
	// stdout holds one and three; stderr two, each "TIME text".
	stamp := func(out, text string) string {
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			ts, rest, _ := strings.Cut(l, " ")
			if rest == text {
				if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
					t.Fatalf("line %q: time: %v", l, err)
				}
				return ts
			}
		}
		t.Fatalf("no line %q in %q", text, out)
		return ""
	}
	stamp(r.Stdout, "one")
	two := stamp(r.Stderr, "two")
	for _, tc := range []struct {
		name             string
		args             []string
		wantOut, wantErr string
	}{
		{"since", []string{"--since", two}, "three\n", "two\n"},
		{"until", []string{"--until", two}, "one\n", ""},
		{"since a duration ago covers all", []string{"--since", "1h"}, "one\nthree\n", "two\n"},
		{"until a duration ago", []string{"--until", "1h"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.CLI(append([]string{"logs"}, append(tc.args, "lw")...)...)
			if r.ExitCode != 0 || r.Stdout != tc.wantOut || r.Stderr != tc.wantErr {
				t.Fatalf("want stdout %q stderr %q\n%s", tc.wantOut, tc.wantErr, r)
			}
		})
	}
	r = d.CLI("logs", "--since", "yesterday", "lw")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "--since: \"yesterday\" is neither a time") {
		t.Fatalf("want exit 2 naming --since\n%s", r)
	}
}

// TestCLI_RunInit: run --init makes berth-init PID 1 with the program as
// its child (its parent is PID 1), and the program's exit code is still run's.
func TestCLI_RunInit(t *testing.T) {
	d := runDaemon(t)
	r := d.CLI("run", "--rm", "--init", "busybox:latest", "ri", "--", "sh", "-c", `tr '\0' ' ' </proc/1/cmdline; echo; echo $PPID; exit 3`)
	if r.ExitCode != 3 || r.Stdout != "/.berth-init -- sh -c tr '\\0' ' ' </proc/1/cmdline; echo; echo $PPID; exit 3 \n1\n" {
		t.Fatalf("want PID 1 berth-init, the program its child, exit 3\n%s", r)
	}
	r = d.CLI("run", "--rm", "--stop-signal", "SIGNOPE", "busybox:latest", "rs", "--", "true")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, `--stop-signal: "SIGNOPE" is not a signal`) {
		t.Fatalf("want exit 2 naming --stop-signal\n%s", r)
	}
}
