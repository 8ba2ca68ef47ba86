package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/test/harness"
)

// probeFIFOs counts berthd's open descriptors on probe output FIFOs.
func probeFIFOs(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.Contains(l, "/probe-") && strings.Contains(l, ".out") {
			n++
		}
	}
	return n
}

// An exec probe whose command leaves a process behind holding its output
// (a daemon it starts) must not cost berthd a goroutine and a descriptor
// per run: the reader of the probe's FIFO is ended with the probe.
func TestProbes_ExecLeftoverChildDoesNotLeak(t *testing.T) {
	dir := t.TempDir()
	d := startDecl(t, dir)
	writeAtomic(t, filepath.Join(dir, "image.yaml"), imageManifest(t))
	writeAtomic(t, filepath.Join(dir, "leak.yaml"), `apiVersion: berth.dev/v1
kind: Container
metadata: {name: probe-leftover}
spec:
  image: busybox
  network: none
  command: [sleep, "3600"]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: probe-leftover}
spec:
  container: probe-leftover
  stopTimeout: 1s
  readinessProbe:
    exec: {command: [sh, -c, 'sleep 3600 & echo ok']}
    periodSeconds: 3
    timeoutSeconds: 3
`)
	waitImage(t, d)
	waitTask(t, d, "probe-leftover", 0)
	// Each probe run leaves a sleep holding its FIFO (the shim's 2 s drain
	// bound lets the run pass); four runs.
	time.Sleep(10 * time.Second) //nolint:forbidigo // runs of a 3 s period are what is counted
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		n := probeFIFOs(t, d.PID())
		return n <= 1, fmt.Sprintf("berthd holds %d probe FIFOs open (one per run the leftover child keeps)", n)
	})
}

// berthd killed while an exec probe runs leaves that exec in the shim and
// its FIFO in the bundle. The restarted berthd's probes must not collide
// with them (its probe numbers start again): a liveness probe that cannot
// even run would restart a healthy task.
func TestProbes_KillDuringExecProbe(t *testing.T) {
	dir := t.TempDir()
	d := startDecl(t, dir)
	writeAtomic(t, filepath.Join(dir, "image.yaml"), imageManifest(t))
	writeAtomic(t, filepath.Join(dir, "kp.yaml"), `apiVersion: berth.dev/v1
kind: Container
metadata: {name: probe-killed}
spec:
  image: busybox
  network: none
  command: [sleep, "3600"]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: probe-killed}
spec:
  container: probe-killed
  stopTimeout: 1s
  livenessProbe:
    exec: {command: [sleep, "2"]}
    periodSeconds: 3
    timeoutSeconds: 3
    failureThreshold: 1
`)
	waitImage(t, d)
	waitTask(t, d, "probe-killed", 0)
	bundle := filepath.Join(d.State, "default", "probe-killed")
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(bundle, "probe-*.out"))
		return len(m) > 0, "no probe running in " + bundle
	})
	d.Kill9()
	d.Restart()
	before := waitTask(t, d, "probe-killed", 0)
	// Three periods: every probe after the restart must run and pass.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		got := getObjects(t, d, "tasks")["probe-killed"]
		if got.task().RestartCount > before.task().RestartCount || got.task().Unhealthy != "" {
			t.Fatalf("task restarted after berthd's restart: %+v\n%s", got.task(), d.Log())
		}
	}
}
