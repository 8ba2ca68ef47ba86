package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// TestRun_Spans: one `berth run --rm` leaves the breakdown make bench
// prints: the CLI's line (BERTH_SPANS=1: main, dial and every call's round
// trip) and berthd's debug "spans" line of each call with the node's steps
// in it. Only that the steps are there is checked; their durations are
// make bench's business.
func TestRun_Spans(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	images := testutil.TestImages(t, "busybox")
	d := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "debug"})
	d.MustCLI(t, "image", "import", filepath.Join(images, "busybox"))
	t.Setenv("BERTH_SPANS", "1")
	r := d.CLI("run", "--rm", "busybox:latest", "spans1", "true")
	if r.ExitCode != 0 {
		t.Fatalf("run: %s", r)
	}
	var cli string
	for _, l := range strings.Split(r.Stderr, "\n") {
		if strings.HasPrefix(l, "berth spans: ") {
			cli = l
		}
	}
	for _, want := range []string{"main=", "dial=", "rpc.Containers.Create=", "rpc.Tasks.Create=", "rpc.Tasks.Wait=", "rpc.Tasks.Delete=", "rpc.Containers.Delete="} {
		if !strings.Contains(cli, want) {
			t.Errorf("CLI spans line %q lacks %s", cli, want)
		}
	}
	// run creates and starts in one call: no Tasks.Start round trip.
	if strings.Contains(cli, "rpc.Tasks.Start=") {
		t.Errorf("run --rm called Tasks.Start: %q", cli)
	}
	steps := map[string][]string{
		"/berth.containers.v1.Containers/Create": {"snapshot.prepare=", "spec.generate=", "db.create="},
		"/berth.tasks.v1.Tasks/Create":           {"rootfs.mount=", "bundle.write=", "shim.create="},
		"/berth.tasks.v1.Tasks/Delete":           {"shim.delete=", "shim.shutdown=", "rootfs.unmount="},
		"/berth.containers.v1.Containers/Delete": {"snapshot.remove=", "db.delete="},
	}
	log := d.Log()
	for method, want := range steps {
		var line string
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "msg=spans") && strings.Contains(l, "method="+method+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("no spans line for %s in berthd's log", method)
			continue
		}
		for _, w := range append(want, "total=") {
			if !strings.Contains(line, w) {
				t.Errorf("spans of %s lack %s: %s", method, w, line)
			}
		}
		// The spec is read from the image's own directory: no writable
		// mount of the new snapshot just to read /etc/passwd.
		if strings.Contains(line, "spec.unmount=") {
			t.Errorf("Containers.Create mounted the snapshot to generate the spec: %s", line)
		}
	}

	// The first task's shim was started on its path (no spare yet); it
	// left a spare started for the next, which adopts it instead.
	if !strings.Contains(lastSpans(log, "/berth.tasks.v1.Tasks/Create"), "shim.start=") {
		t.Errorf("first task create did not start a shim: %s", lastSpans(log, "/berth.tasks.v1.Tasks/Create"))
	}
	adopted := false
	for i := 0; i < 5 && !adopted; i++ {
		if r := d.CLI("run", "--rm", "busybox:latest", fmt.Sprintf("spans-next%d", i), "true"); r.ExitCode != 0 {
			t.Fatalf("run: %s", r)
		}
		line := lastSpans(d.Log(), "/berth.tasks.v1.Tasks/Create")
		adopted = strings.Contains(line, "shim.adopt=") && !strings.Contains(line, "shim.start=")
	}
	if !adopted {
		t.Errorf("no later task create adopted a spare shim: %s", lastSpans(d.Log(), "/berth.tasks.v1.Tasks/Create"))
	}
}

func lastSpans(log, method string) string {
	var line string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=spans") && strings.Contains(l, "method="+method+" ") {
			line = l
		}
	}
	return line
}

// TestRun_SpareShimAfterKill: the spare shim a killed berthd left (it is
// in its own session, as every shim) is stopped by the next berthd, and a
// new one serves the next task.
func TestRun_SpareShimAfterKill(t *testing.T) {
	d := runDaemon(t)
	if r := d.CLI("run", "--rm", "busybox:latest", "spare1", "true"); r.ExitCode != 0 {
		t.Fatalf("run: %s", r)
	}
	pidOf := func() int {
		dirs, _ := filepath.Glob(filepath.Join(d.State, ".spare", "*", "shim.pid"))
		for _, p := range dirs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
		return 0
	}
	var old int
	harness.Eventually(t, 20*time.Second, func() (bool, string) { old = pidOf(); return old != 0, "no spare shim serving" })
	d.Kill9()
	if syscall.Kill(old, 0) != nil {
		t.Fatalf("spare shim %d died with berthd: it should outlive it as every shim", old)
	}
	d.Restart()
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", old))
		return err != nil || !strings.Contains(string(b), "-spare"), fmt.Sprintf("spare shim %d still runs after the restart", old)
	})
	if r := d.CLI("run", "--rm", "busybox:latest", "spare2", "echo", "ok"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "ok") {
		t.Fatalf("run after restart: %s", r)
	}
}
