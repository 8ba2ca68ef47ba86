package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/spec"
	"berth.dev/berth/test/harness"
)

// killShim SIGKILLs the berth-shim of the container id, found by its
// bundle's pid file, and returns the bundle directory.
func killShim(t *testing.T, d *harness.Daemon, id string) string {
	t.Helper()
	pidFiles, _ := filepath.Glob(filepath.Join(d.State, "*", id, "shim.pid"))
	if len(pidFiles) != 1 {
		t.Fatalf("shim.pid of %s: found %v", id, pidFiles)
	}
	var pid int
	if b, err := os.ReadFile(pidFiles[0]); err != nil || func() bool { _, e := fmt.Sscan(string(b), &pid); return e != nil }() {
		t.Fatalf("read %s: %v", pidFiles[0], err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill shim %d of %s: %v", pid, id, err)
	}
	return filepath.Dir(pidFiles[0])
}

// exitEvents counts the /tasks/exit events about id that berthd logged,
// across its restarts (an event published while berthd recovers comes
// before any subscriber can connect).
func exitEvents(d *harness.Daemon, id string) int {
	return strings.Count(d.Log(), "msg=event topic=/tasks/exit namespace=default id="+id+"\n")
}

// TestDeclarative_DeadShimNever: a restartPolicy Never task whose shim is
// SIGKILLed, while berthd runs ("live") or while it is down ("down"),
// stays exited across the next berthd start: no restart, its exit
// published once, and no rootfs left mounted without a shim.
func TestDeclarative_DeadShimNever(t *testing.T) {
	d := startDecl(t, "")
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	waitImage(t, d)
	writeAtomic(t, filepath.Join(d.Manifests, "live.yaml"), taskManifest("live", "hi", "Never"))
	writeAtomic(t, filepath.Join(d.Manifests, "down.yaml"), taskManifest("down", "hi", "Never"))
	waitTask(t, d, "live", 0)
	waitTask(t, d, "down", 0)

	liveBundle := killShim(t, d, "live")
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		ts := getObjects(t, d, "tasks")["live"].task()
		return ts.State == spec.TaskPhaseExited, fmt.Sprintf("live after its shim died: %+v", ts)
	})
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		m := harness.MountsUnder(liveBundle)
		return len(m) == 0, fmt.Sprintf("mounts of a dead shim's bundle: %v", m)
	})
	d.Kill9()
	downBundle := killShim(t, d, "down")
	d.Restart()

	// The status kept from before the restart says down runs until the
	// new berthd reconciles it; then it must stay exited for several
	// resyncs (1 s each): time for a wrong restart or a second exit to show.
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		ts := getObjects(t, d, "tasks")["down"].task()
		return ts.State == spec.TaskPhaseExited || ts.RestartCount != 0, fmt.Sprintf("down after its shim died: %+v", ts)
	})
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range []string{"live", "down"} {
			if ts := getObjects(t, d, "tasks")[id].task(); ts.RestartCount != 0 || ts.State != spec.TaskPhaseExited {
				t.Fatalf("%s (restartPolicy Never) after its shim died: %+v", id, ts)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, id := range []string{"live", "down"} {
		ts := getObjects(t, d, "tasks")[id].task()
		if ts.State != spec.TaskPhaseExited || ts.RestartCount != 0 {
			t.Errorf("%s: %+v, want exited with no restart", id, ts)
		}
		if n := exitEvents(d, id); n != 1 {
			t.Errorf("%s: %d /tasks/exit events, want 1", id, n)
		}
	}
	for _, b := range []string{liveBundle, downBundle} {
		if m := harness.MountsUnder(b); len(m) != 0 {
			t.Errorf("mounts left under %s: %v", b, m)
		}
	}
}
