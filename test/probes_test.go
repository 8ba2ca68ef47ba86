package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/spec"
	"berth.dev/berth/test/harness"
)

// The health end-to-end tests: probes, berth wait, dependsOn, with a real
// berthd, runc and busybox.

// readyCond is the object's Ready condition.
func readyCond(o declObject) spec.Condition {
	c, _ := o.Status.Condition(spec.ConditionReady)
	return c
}

// An httpd with an HTTP liveness probe on a file it serves: once the file
// is deleted inside the container the task is restarted within
// periodSeconds × failureThreshold + 1 s, with reason Unhealthy and the
// probe's output in its status. The container's network is none: the
// probe reaches it inside its network namespace.
func TestProbes_HTTPLivenessRestarts(t *testing.T) {
	dir := t.TempDir()
	d := startDecl(t, dir)
	writeAtomic(t, filepath.Join(dir, "image.yaml"), imageManifest(t))
	const period, threshold = 1, 2
	writeAtomic(t, filepath.Join(dir, "web.yaml"), fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Container
metadata: {name: probe-httpd}
spec:
  image: busybox
  init: true
  network: none
  command: [sh, -c, 'mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www']
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: probe-httpd}
spec:
  container: probe-httpd
  stopTimeout: 2s
  livenessProbe:
    httpGet: {path: /healthz, port: 8080}
    periodSeconds: %d
    failureThreshold: %d
`, period, threshold))
	waitImage(t, d)
	before := waitTask(t, d, "probe-httpd", 0)
	evs := startEvents(t, d, "topic==/tasks/unhealthy", "topic==/tasks/exec-added")
	d.MustCLI(t, "exec", "probe-httpd", "--", "rm", "/www/healthz")
	removed := time.Now()
	deadline := time.Duration(period*threshold)*time.Second + time.Second
	var after declObject
	for {
		after = getObjects(t, d, "tasks")["probe-httpd"]
		if after.task().RestartCount > before.task().RestartCount {
			break
		}
		if time.Since(removed) > deadline {
			t.Fatalf("not restarted within %s of the file's removal: %+v %+v\n%s", deadline, after.task(), after.Status.Conditions, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(removed)
	t.Logf("restarted %s after the file was removed (deadline %s)", took.Round(time.Millisecond), deadline)
	ts := after.task()
	if !strings.Contains(ts.Unhealthy, "liveness probe failed") || !strings.Contains(ts.Unhealthy, "404") {
		t.Errorf("status.unhealthy = %q, want the liveness probe's failure with its output (404)", ts.Unhealthy)
	}
	// The restart recreated the file (the command writes it): healthy
	// again, with the reason of the last restart kept.
	got := waitTask(t, d, "probe-httpd", before.task().Pid)
	if got.task().Unhealthy == "" {
		t.Error("the reason of the restart was lost once it ran again")
	}
	var unhealthy, execs int
	for _, e := range evs.events(t) {
		switch {
		case e.Topic == "/tasks/unhealthy" && strings.Contains(string(e.Event), "probe-httpd") && strings.Contains(string(e.Event), "404"):
			unhealthy++
		case e.Topic == "/tasks/exec-added":
			execs++
		}
	}
	if unhealthy == 0 {
		t.Errorf("no /tasks/unhealthy event with the probe's output: %+v", evs.events(t))
	}
	body := scrape(t, d)
	if n := mustMetric(t, body, "berth_probe_unhealthy_total"); n < 1 {
		t.Errorf("berth_probe_unhealthy_total = %v, want >= 1", n)
	}
	if n := mustMetric(t, body, "berth_probes_total", "probe", "liveness", "result", "failure"); n < threshold {
		t.Errorf("berth_probes_total{liveness,failure} = %v, want >= %d", n, threshold)
	}
	if n := mustMetric(t, body, "berth_probe_duration_seconds_count", "handler", "httpGet"); n < threshold {
		t.Errorf("berth_probe_duration_seconds_count{httpGet} = %v", n)
	}
	if execs != 1 { // berth exec rm's own
		t.Errorf("%d /tasks/exec-added events, want 1 (berth exec's; probes publish none)", execs)
	}
}

// An exec readiness probe flips the Task's Ready condition both ways, and
// berth wait follows it (exit 0 once Ready, 1 on a timeout).
func TestProbes_ExecReadinessFlips(t *testing.T) {
	dir := t.TempDir()
	d := startDecl(t, dir)
	writeAtomic(t, filepath.Join(dir, "image.yaml"), imageManifest(t))
	readyYAML := `apiVersion: berth.dev/v1
kind: Container
metadata: {name: probe-ready}
spec:
  image: busybox
  command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
  readinessProbe:
    exec: {command: [sh, -c, 'test -f /tmp/ready || { echo no ready file; exit 3; }']}
    periodSeconds: 1
    failureThreshold: 1
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: probe-ready}
spec: {container: probe-ready, stopTimeout: 2s}
`
	writeAtomic(t, filepath.Join(dir, "ready.yaml"), readyYAML)
	waitImage(t, d)
	notReady := func(want string) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, func() (bool, string) {
			o := getObjects(t, d, "tasks")["probe-ready"]
			c := readyCond(o)
			return o.task().State == "running" && c.Status == spec.ConditionFalse && c.Reason == "NotReady" && strings.Contains(c.Message, want),
				fmt.Sprintf("%+v %+v", o.task(), o.Status.Conditions)
		})
	}
	notReady("exit status 3: no ready file")
	if r := d.CLI("wait", "task", "probe-ready", "--for", "condition=Ready", "--timeout", "1500ms"); r.ExitCode != 1 || !strings.Contains(r.Stderr, "NotReady") {
		t.Errorf("berth wait on a task not ready: want exit 1 naming NotReady, got %s", r)
	}
	d.MustCLI(t, "exec", "probe-ready", "--", "touch", "/tmp/ready")
	if r := d.CLI("wait", "task", "probe-ready", "--for", "condition=Ready", "--timeout", "10s"); r.ExitCode != 0 {
		t.Fatalf("berth wait: %s", r)
	}
	if c := readyCond(getObjects(t, d, "tasks")["probe-ready"]); c.Status != spec.ConditionTrue {
		t.Fatalf("berth wait returned but the task is not Ready: %+v", c)
	}
	d.MustCLI(t, "exec", "probe-ready", "--", "rm", "/tmp/ready")
	notReady("no ready file")
	if r := d.CLI("wait", "task", "probe-ready", "--for", "condition=Ready=False", "--timeout", "5s"); r.ExitCode != 0 {
		t.Errorf("berth wait for Ready=False: %s", r)
	}
	if r := d.CLI("wait", "task", "no-such-task", "--timeout", "300ms"); r.ExitCode != 2 {
		t.Errorf("berth wait on an undeclared task: want exit 2, got %s", r)
	}
	// A changed probe (the file it tests) restarts the probes, not the
	// container nor its task.
	before := getObjects(t, d, "tasks")["probe-ready"].task()
	writeAtomic(t, filepath.Join(dir, "ready.yaml"), strings.Replace(readyYAML, "/tmp/ready", "/etc/passwd", 1))
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		o := getObjects(t, d, "tasks")["probe-ready"]
		return o.ready() && o.Status.ObservedGeneration > 0, fmt.Sprintf("%+v %+v", o.task(), o.Status.Conditions)
	})
	if after := getObjects(t, d, "tasks")["probe-ready"].task(); after.Pid != before.Pid || !after.ContainerCreatedAt.Equal(before.ContainerCreatedAt) {
		t.Errorf("a probe change restarted the task or recreated the container: before %+v, after %+v", before, after)
	}
	// The probe's execs leave nothing in the container's output log.
	if out := d.MustCLI(t, "logs", "probe-ready"); strings.Contains(out, "no ready file") {
		t.Errorf("exec probe output went to the container's log:\n%s", out)
	}
}

// dependsOn: B starts only once A is Ready (its readiness probe passes),
// and a cycle is refused by berth validate and left Degraded by berthd.
func TestProbes_DependsOn(t *testing.T) {
	dir := t.TempDir()
	d := startDecl(t, dir)
	writeAtomic(t, filepath.Join(dir, "image.yaml"), imageManifest(t))
	ctr := func(name, probe string) string {
		return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Container
metadata: {name: %s}
spec:
  image: busybox
  command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
%s---
`, name, probe)
	}
	readyProbe := "  readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1}\n"
	writeAtomic(t, filepath.Join(dir, "app.yaml"), ctr("dep-db", readyProbe)+ctr("dep-web", "")+`apiVersion: berth.dev/v1
kind: Task
metadata: {name: dep-db}
spec: {container: dep-db, stopTimeout: 2s}
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: dep-web}
spec:
  container: dep-web
  stopTimeout: 2s
  dependsOn: [{task: dep-db, condition: Ready}]
`)
	waitImage(t, d)
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		ts := getObjects(t, d, "tasks")
		db, web := ts["dep-db"], ts["dep-web"]
		return db.task().State == "running" && readyCond(web).Reason == "WaitingForDependency",
			fmt.Sprintf("db %+v; web %+v %+v", db.task(), web.task(), web.Status.Conditions)
	})
	if web := getObjects(t, d, "tasks")["dep-web"]; web.task().Pid != 0 {
		t.Fatalf("dep-web started before dep-db was Ready: %+v", web.task())
	}
	d.MustCLI(t, "exec", "dep-db", "--", "touch", "/tmp/ready")
	web := waitTask(t, d, "dep-web", 0)
	db := getObjects(t, d, "tasks")["dep-db"]
	if !web.task().StartedAt.After(readyCond(db).LastTransitionTime.Add(-time.Second)) || !db.ready() {
		t.Errorf("dep-web started at %s, dep-db Ready since %s", web.task().StartedAt, readyCond(db).LastTransitionTime)
	}

	// Removing both stops the dependent first.
	if err := os.Remove(filepath.Join(dir, "app.yaml")); err != nil {
		t.Fatal(err)
	}
	var webGone, dbGone time.Time
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		ts := runtimeTasks(t, d)
		if _, ok := ts["dep-web"]; !ok && webGone.IsZero() {
			webGone = time.Now()
		}
		if _, ok := ts["dep-db"]; !ok && dbGone.IsZero() {
			dbGone = time.Now()
		}
		return !webGone.IsZero() && !dbGone.IsZero(), fmt.Sprintf("%v", ts)
	})
	if dbGone.Before(webGone) {
		t.Errorf("dep-db stopped (%s) before its dependent dep-web (%s)", dbGone, webGone)
	}

	// A cycle: refused offline, Degraded on the node.
	cycle := ctr("cyc-a", "") + ctr("cyc-b", "") + `apiVersion: berth.dev/v1
kind: Task
metadata: {name: cyc-a}
spec: {container: cyc-a, dependsOn: [{task: cyc-b}]}
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: cyc-b}
spec: {container: cyc-b, dependsOn: [{task: cyc-a}]}
`
	f := filepath.Join(t.TempDir(), "cycle.yaml")
	if err := os.WriteFile(f, []byte(cycle), 0o644); err != nil {
		t.Fatal(err)
	}
	r := d.CLI("validate", "-f", f)
	if r.ExitCode != 1 || !strings.Contains(r.Stdout, "spec.dependsOn: dependency cycle: cyc-a → cyc-b → cyc-a") || !strings.Contains(r.Stdout, "cycle.yaml") {
		t.Errorf("berth validate on a cycle: %s", r)
	}
	if r := d.CLI("apply", "-f", f); r.ExitCode != 2 || !strings.Contains(r.Stderr, "dependency cycle: cyc-a → cyc-b → cyc-a") {
		t.Errorf("berth apply of a cycle: want exit 2 naming it, got %s", r)
	}
	// In the watched directory it cannot be refused as a whole: berthd
	// leaves the Tasks of the cycle Degraded, naming it, and starts none.
	writeAtomic(t, filepath.Join(dir, "cycle.yaml"), cycle)
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		a := getObjects(t, d, "tasks")["cyc-a"]
		c, _ := a.Status.Condition(spec.ConditionDegraded)
		return c.Status == spec.ConditionTrue && c.Reason == "DependencyCycle" && strings.Contains(c.Message, "cyc-a → cyc-b → cyc-a"),
			fmt.Sprintf("%+v", a.Status.Conditions)
	})
	if _, ok := runtimeTasks(t, d)["cyc-a"]; ok {
		t.Error("a Task in a cycle was started")
	}
}

// On the built-in bridge network: a startup probe (HTTP) holds readiness
// (TCP) off until it passes, then the Task is Ready; a startup probe that
// never passes stops the task, which restartPolicy Never leaves Degraded
// with reason Unhealthy.
func TestProbes_BridgeStartupAndTCP(t *testing.T) {
	d := startNet(t)
	file := filepath.Join(t.TempDir(), "probes.yaml")
	writeAtomic(t, file, imageManifest(t)+`---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: probe-br}
spec:
  image: busybox
  init: true
  network: bridge
  command: [sh, -c, 'sleep 2; mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www']
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: probe-br}
spec:
  container: probe-br
  stopTimeout: 2s
  startupProbe: {httpGet: {port: 8080}, periodSeconds: 1, failureThreshold: 30}
  readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: probe-never}
spec:
  image: busybox
  init: true
  network: bridge
  command: [sleep, "1000"]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: probe-never}
spec:
  container: probe-never
  restartPolicy: Never
  stopTimeout: 2s
  startupProbe: {tcpSocket: {port: 9}, periodSeconds: 1, failureThreshold: 2}
`)
	// apply --wait means healthy: it waits for probe-br's probes, and
	// fails naming the Task whose startup probe never passes.
	r := d.CLI("apply", "-f", file, "--wait", "--timeout", "8s")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "probe-never") || strings.Contains(r.Stderr, "probe-br") {
		t.Errorf("apply --wait: want exit 2 naming probe-never only, got %s", r)
	}
	if r := d.CLI("wait", "task", "probe-br", "--timeout", "20s"); r.ExitCode != 0 {
		t.Fatalf("berth wait: %s", r)
	}
	// It was Starting first: its command sleeps 2 s before serving.
	if c := readyCond(getObjects(t, d, "tasks")["probe-br"]); c.LastTransitionTime.Sub(getObjects(t, d, "tasks")["probe-br"].task().StartedAt) < 2*time.Second {
		t.Errorf("probe-br Ready %s after its start, before its server could answer", c.LastTransitionTime.Sub(getObjects(t, d, "tasks")["probe-br"].task().StartedAt))
	}
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		o := getObjects(t, d, "tasks")["probe-never"]
		deg, _ := o.Status.Condition(spec.ConditionDegraded)
		return deg.Status == spec.ConditionTrue && deg.Reason == "Unhealthy" && strings.Contains(deg.Message, "startup probe failed 2 times: tcp 127.0.0.1:9") &&
			o.task().State == "exited", fmt.Sprintf("%+v %+v", o.task(), o.Status.Conditions)
	})
}

// An exec probe that outlives timeoutSeconds fails with a timeout, and its
// process is killed and removed from the shim (nothing of it stays
// running in the container).
func TestProbes_ExecTimeout(t *testing.T) {
	dir := t.TempDir()
	d := startDecl(t, dir)
	writeAtomic(t, filepath.Join(dir, "image.yaml"), imageManifest(t))
	writeAtomic(t, filepath.Join(dir, "slow.yaml"), `apiVersion: berth.dev/v1
kind: Container
metadata: {name: probe-slow}
spec:
  image: busybox
  command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: probe-slow}
spec:
  container: probe-slow
  stopTimeout: 2s
  readinessProbe: {exec: {command: [sleep, "30"]}, timeoutSeconds: 1, periodSeconds: 2, failureThreshold: 1}
`)
	waitImage(t, d)
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		o := getObjects(t, d, "tasks")["probe-slow"]
		c := readyCond(o)
		return c.Reason == "NotReady" && strings.Contains(c.Message, "timed out after 1s"), fmt.Sprintf("%+v %+v", o.task(), o.Status.Conditions)
	})
	// Between two probes (period 2 s, timeout 1 s) no `sleep 30` is left
	// in the container: a probe process outlives its timeout by at most
	// its kill.
	leftover := func() (int, string) {
		var ps []struct {
			Pid int `json:"pid"`
		}
		out := d.MustCLI(t, "task", "ps", "probe-slow", "-o", "json")
		if err := json.Unmarshal([]byte(out), &ps); err != nil {
			t.Fatalf("task ps: %v\n%s", err, out)
		}
		n := 0
		for _, p := range ps {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid)); string(b) == "sleep\x0030\x00" {
				n++
			}
		}
		return n, out
	}
	sawProbe := false
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		n, out := leftover()
		sawProbe = sawProbe || n > 0
		return sawProbe, "no probe process seen running: " + out
	})
	harness.Eventually(t, 3*time.Second, func() (bool, string) {
		n, out := leftover()
		return n == 0, fmt.Sprintf("%d probe processes left: %s", n, out)
	})
}
