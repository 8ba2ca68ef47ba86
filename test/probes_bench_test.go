package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// BenchmarkProbes_Cost measures what probes cost the node: berthd's CPU
// and the shims' (with the runc exec processes they reap) per probe, for
// 10 tasks probed every second, over a 20 s window once all are Ready.
//
//	BERTH_BIN=$PWD/bin BERTH_TESTIMAGES=$PWD/.cache/testimages \
//	  go test ./test/ -run '^$' -bench Probes_Cost -benchtime 1x
func BenchmarkProbes_Cost(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireBinary(b, "runc")
	for _, kind := range []string{"exec", "httpGet", "none"} {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				benchProbes(b, kind)
			}
		})
	}
}

func benchProbes(b *testing.B, kind string) {
	const tasks, window = 10, 20 * time.Second
	dir := b.TempDir()
	d := harness.StartDaemon(b, harness.DaemonOptions{Manifests: dir, LogLevel: "warn"})
	layout := filepath.Join(testutil.TestImages(b, "busybox"), "busybox")
	manifests := fmt.Sprintf("apiVersion: berth.dev/v1\nkind: Image\nmetadata: {name: busybox}\nspec: {ref: example.local/busybox:latest, pullPolicy: Never, source: {layout: %s}}\n", layout)
	probe := map[string]string{
		"exec":    "  readinessProbe: {exec: {command: [\"true\"]}, periodSeconds: 1}\n",
		"httpGet": "  readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}\n",
		"none":    "",
	}[kind]
	for i := range tasks {
		manifests += fmt.Sprintf(`---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: pb-%[1]s-%[2]d}
spec:
  image: busybox
  init: true
  command: [sh, -c, 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www']
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: pb-%[1]s-%[2]d}
spec:
  container: pb-%[1]s-%[2]d
  stopTimeout: 2s
%[3]s`, strings.ToLower(kind), i, probe)
	}
	if err := os.WriteFile(filepath.Join(dir, ".all.yaml"), []byte(manifests), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, ".all.yaml"), filepath.Join(dir, "all.yaml")); err != nil {
		b.Fatal(err)
	}
	harness.Eventually(b, 60*time.Second, func() (bool, string) {
		var objs []declObject
		out := d.MustCLI(b, "get", "tasks", "-o", "json")
		if err := json.Unmarshal([]byte(out), &objs); err != nil {
			b.Fatal(err)
		}
		ready := 0
		for _, o := range objs {
			if o.ready() {
				ready++
			}
		}
		return ready == tasks, fmt.Sprintf("%d of %d tasks ready", ready, tasks)
	})
	shims := shimsOf(d.State)
	if len(shims) != tasks {
		b.Fatalf("found %d shims, want %d", len(shims), tasks)
	}
	d0, s0 := cpuTicks(d.PID()), 0
	for _, p := range shims {
		s0 += cpuTicks(p)
	}
	start := time.Now()
	time.Sleep(window) // a measurement window, not a wait for a condition
	elapsed := time.Since(start)
	d1, s1 := cpuTicks(d.PID()), 0
	for _, p := range shims {
		s1 += cpuTicks(p)
	}
	const tick = 10 * time.Millisecond // USER_HZ 100
	probes := float64(tasks) * elapsed.Seconds()
	berthd := time.Duration(d1-d0) * tick
	shim := time.Duration(s1-s0) * tick
	b.ReportMetric(float64(berthd.Microseconds())/probes, "berthd-µs/probe")
	b.ReportMetric(float64(shim.Microseconds())/probes, "shim+runc-µs/probe")
	b.ReportMetric(100*berthd.Seconds()/elapsed.Seconds(), "berthd-%cpu")
	b.ReportMetric(100*shim.Seconds()/elapsed.Seconds(), "shims-%cpu")
}

// cpuTicks is a process's user+system time with that of its reaped
// children (a shim reaps the runc processes of its execs), in clock ticks.
func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n := 0
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime (fields 14-17)
		v, _ := strconv.Atoi(f[i])
		n += v
	}
	return n
}

// shimsOf lists the berth-shim processes whose command line names state.
func shimsOf(state string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(b), "berth-shim") || !strings.Contains(string(b), state) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}
