package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/test/harness"
)

// lockedBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// streaming is a berth command left running (get -w, logs -f).
type streaming struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan error
}

func startStreaming(t *testing.T, d *harness.Daemon, args ...string) *streaming {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s := &streaming{cmd: d.CLICommand(ctx, args...), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	return s
}

// waitFor waits until cond holds of what the command printed.
func (s *streaming) waitFor(t *testing.T, what string, cond func(stdout string) bool) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		out := s.stdout.String()
		return cond(out), fmt.Sprintf("%s; stdout so far:\n%s\nstderr:\n%s", what, out, s.stderr.String())
	})
}

// interrupt sends SIGINT, as Ctrl-C does, and returns the exit code.
func (s *streaming) interrupt(t *testing.T) int {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGINT; stdout:\n%s", s.stdout.String())
	}
	return s.cmd.ProcessState.ExitCode()
}

// tableWithoutAge is a table's lines, each as its cells but AGE (which
// changes by itself) joined by single spaces. Cells are cut where the
// header's columns start, so a row that does not line up under its
// header reads wrong.
func tableWithoutAge(out string) []string {
	var lines []string
	var starts []int
	ageCol := -1
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if strings.HasPrefix(l, "NAME ") || strings.HasPrefix(l, "NAMESPACE ") {
			starts, ageCol = nil, -1
			for i, f := range strings.Fields(l) {
				if f == "AGE" {
					ageCol = i
				}
				off := 0
				if len(starts) > 0 {
					off = starts[len(starts)-1] + 1
				}
				starts = append(starts, off+strings.Index(l[off:], f))
			}
		}
		var cells []string
		for i, st := range starts {
			end := len(l)
			if i+1 < len(starts) && starts[i+1] < len(l) {
				end = starts[i+1]
			}
			if st > len(l) {
				break
			}
			if i != ageCol {
				cells = append(cells, strings.TrimSpace(l[st:end]))
			}
		}
		lines = append(lines, strings.Join(cells, " "))
	}
	return lines
}

// TestCLI_GetSelectorAndWatch: get -l keeps the objects whose labels
// match (berthd evaluates it, for one kind and for all); get -w prints the
// table, then a row per change, a "Deleted" row for an object deleted,
// nothing for objects the selector leaves out, and ends with 0 on Ctrl-C.
func TestCLI_GetSelectorAndWatch(t *testing.T) {
	d := startDecl(t, "")
	d.MustCLI(t, "get", "tasks") // berthd answers
	if r := d.CLIStdin(stoppedTask("gw-shop-a", "shop")+stoppedTask("gw-blog-a", "blog"), "apply", "-f", "-", "--applyset", "gw"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	// Their containers are not declared: they wait for them.
	stopped := func(name string) string { return name + " False (WaitingForContainer) - - 0 - api" }
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		out := d.MustCLI(t, "get", "tasks")
		return strings.Count(out, "(WaitingForContainer)") == 2, out
	})
	t.Run("selector", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"get", "tasks", "-l", "app=shop"}, []string{"NAME READY STATE PID RESTARTS EXIT SOURCE", stopped("gw-shop-a")}},
			{[]string{"get", "all", "-l", "app!=shop"}, []string{"NAME READY STATE PID RESTARTS EXIT SOURCE", stopped("gw-blog-a")}},
			{[]string{"get", "tasks", "-l", "app in (shop,blog)"}, []string{"NAME READY STATE PID RESTARTS EXIT SOURCE", stopped("gw-blog-a"), stopped("gw-shop-a")}},
		} {
			r := d.CLI(tc.args...)
			if got := tableWithoutAge(r.Stdout); r.ExitCode != 0 || strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got %q, want %q\n%s", got, tc.want, r)
			}
		}
		r := d.CLI("get", "tasks", "-l", "app=nothing")
		if r.ExitCode != 0 || r.Stdout != "" || r.Stderr != "no objects declared in namespace default matching app=nothing\n" {
			t.Errorf("want nothing and a note on stderr\n%s", r)
		}
		r = d.CLI("get", "tasks", "-l", "app=web,")
		if r.ExitCode != 2 || !strings.HasPrefix(r.Stderr, `berth: selector "app=web,": empty requirement`) {
			t.Errorf("want exit 2 naming the selector\n%s", r)
		}
	})
	t.Run("watch", func(t *testing.T) {
		w := startStreaming(t, d, "get", "tasks", "-w", "-l", "app=shop")
		w.waitFor(t, "the first table", func(out string) bool { return strings.Count(out, "\n") >= 2 })
		if r := d.CLIStdin(stoppedTask("gw-shop-a", "shop")+stoppedTask("gw-shop-b", "shop")+stoppedTask("gw-blog-a", "blog")+stoppedTask("gw-blog-b", "blog"), "apply", "-f", "-", "--applyset", "gw"); r.ExitCode != 0 {
			t.Fatal(r)
		}
		w.waitFor(t, "gw-shop-b's row", func(out string) bool {
			return strings.Contains(strings.Join(tableWithoutAge(out), "\n"), stopped("gw-shop-b"))
		})
		d.MustCLI(t, "delete", "task", "gw-shop-a")
		w.waitFor(t, "gw-shop-a's Deleted row", func(out string) bool { return strings.Contains(out, "Deleted") })
		if code := w.interrupt(t); code != 0 {
			t.Errorf("exit %d after SIGINT, want 0\n%s", code, w.stderr.String())
		}
		got := tableWithoutAge(w.stdout.String())
		// gw-shop-b may be printed first before its status is recorded.
		var rows []string
		for _, l := range got {
			if l != "gw-shop-b Unknown - - 0 - api" {
				rows = append(rows, l)
			}
		}
		want := []string{"NAME READY STATE PID RESTARTS EXIT SOURCE", stopped("gw-shop-a"), stopped("gw-shop-b"), "gw-shop-a Deleted - - 0 - api"}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") {
			t.Errorf("watch printed %q, want %q", got, want)
		}
		if lines := strings.Split(w.stdout.String(), "\n"); len(lines) > 1 && !strings.HasPrefix(lines[1], "gw-shop-a   ") {
			t.Errorf("rows do not line up under the header:\n%s", w.stdout.String())
		}
	})
	t.Run("watch -o json --output-watch-events", func(t *testing.T) {
		w := startStreaming(t, d, "get", "tasks", "-w", "-o", "json", "--output-watch-events", "-l", "app=blog")
		type event struct {
			Type   string     `json:"type"`
			Object declObject `json:"object"`
		}
		events := func(out string) []string {
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				var ev event
				if l == "" || json.Unmarshal([]byte(l), &ev) != nil {
					continue
				}
				got = append(got, ev.Type+" "+ev.Object.Metadata.Name)
			}
			return got
		}
		has := func(want string) func(string) bool {
			return func(out string) bool { return slices.Contains(events(out), want) }
		}
		w.waitFor(t, "gw-blog-a added", has("ADDED gw-blog-a"))
		if r := d.CLIStdin(stoppedTask("gw-blog-c", "blog"), "apply", "-f", "-", "--applyset", "gw2"); r.ExitCode != 0 {
			t.Fatal(r)
		}
		w.waitFor(t, "gw-blog-c added", has("ADDED gw-blog-c"))
		d.MustCLI(t, "delete", "task", "gw-blog-a")
		w.waitFor(t, "gw-blog-a deleted", has("DELETED gw-blog-a"))
		if code := w.interrupt(t); code != 0 {
			t.Errorf("exit %d after SIGINT", code)
		}
		for _, l := range strings.Split(strings.TrimSpace(w.stdout.String()), "\n") {
			if !json.Valid([]byte(l)) {
				t.Errorf("not one JSON object per line: %q", l)
			}
		}
		for _, ev := range events(w.stdout.String()) {
			if strings.Contains(ev, "shop") {
				t.Errorf("%s: the selector keeps app=blog only", ev)
			}
		}
	})
	t.Run("delete -l", func(t *testing.T) {
		r := d.CLI("delete", "tasks", "-l", "app=blog")
		if r.ExitCode != 0 || r.Stdout != "Task default/gw-blog-b deleted\nTask default/gw-blog-c deleted\n" {
			t.Errorf("want the app=blog tasks deleted\n%s", r)
		}
		if got := declaredNames(t, d); got != "gw-shop-b" {
			t.Errorf("declared tasks %q, want gw-shop-b", got)
		}
		r = d.CLI("delete", "all", "-l", "app=blog")
		if r.ExitCode != 0 || r.Stdout != "" || r.Stderr != "no objects applied with berth apply in namespace default match app=blog\n" {
			t.Errorf("nothing left to match: want exit 0 and a note\n%s", r)
		}
		if r := d.CLI("delete", "tasks", "gw-shop-b", "-l", "app=shop"); r.ExitCode != 2 {
			t.Errorf("names with -l: want exit 2\n%s", r)
		}
	})
}
