package test

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	nsapi "berth.dev/berth/api/namespaces/v1"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/spec"
	"berth.dev/berth/test/harness"
	"github.com/containerd/ttrpc"
)

// scrape fetches d's /metrics as text.
func scrape(t *testing.T, d *harness.Daemon) string {
	t.Helper()
	code, body := obsGet(t, d, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d\n%s", code, body)
	}
	return body
}

func obsGet(t *testing.T, d *harness.Daemon, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + d.MetricsAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric finds one series in a scrape by name and label pairs (a subset of
// its labels); ok is false when no series matches.
func metric(body, name string, labels ...string) (v float64, ok bool) {
	for _, line := range strings.Split(body, "\n") {
		rest, found := strings.CutPrefix(line, name)
		if !found || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+`="`+labels[i+1]+`"`) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		if err == nil {
			return f, true
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, body, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metric(body, name, labels...)
	if !ok {
		t.Fatalf("no series %s%v in the scrape", name, labels)
	}
	return v
}

// eventSub is a `berth events` subprocess whose lines are collected.
type eventSub struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
}

type eventLine struct {
	Timestamp time.Time       `json:"timestamp"`
	Namespace string          `json:"namespace"`
	Topic     string          `json:"topic"`
	Event     json.RawMessage `json:"event"`
}

// startEvents runs `berth events -o json` with filters and waits until
// berthd counts one more subscriber.
func startEvents(t *testing.T, d *harness.Daemon, filters ...string) *eventSub {
	t.Helper()
	before := mustMetric(t, scrape(t, d), "berth_event_subscribers")
	args := []string{"--address", d.Socket, "events", "-o", "json"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	s := &eventSub{cmd: exec.Command(testutil.Bin(t, "berth"), args...)}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		n := mustMetric(t, scrape(t, d), "berth_event_subscribers")
		return n > before, fmt.Sprintf("berth_event_subscribers %v, want > %v", n, before)
	})
	return s
}

func (s *eventSub) events(t *testing.T) []eventLine {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []eventLine
	for _, l := range s.lines {
		var e eventLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("events -o json printed %q: %v", l, err)
		}
		out = append(out, e)
	}
	return out
}

// waitFor waits until the subscriber printed an event of topic in ns.
func (s *eventSub) waitFor(t *testing.T, ns, topic string) {
	t.Helper()
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		evs := s.events(t)
		for _, e := range evs {
			if e.Namespace == ns && e.Topic == topic {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no %s in %s among %d events: %+v", topic, ns, len(evs), evs)
	})
}

func topics(evs []eventLine) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Namespace+" "+e.Topic)
	}
	return out
}

// TestObservability_MetricsEventsHealth pulls an image and checks that the
// pull and API series moved from their pre-set zeros, that health and
// readiness answer, and that event filters select exactly what they name,
// in order.
func TestObservability_MetricsEventsHealth(t *testing.T) {
	testutil.RequireRoot(t)
	reg := harness.StartInProcessRegistry(t)
	ref := harness.PushTestImages(t, reg.Addr, "busybox")["busybox"]
	// No manifest directory (the flag after the harness's own wins).
	d := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "info", Args: []string{"--manifests", ""}})

	if code, body := obsGet(t, d, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: got %d %q, want 200", code, body)
	}
	// No manifests: ready once the controllers reconciled the empty set.
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		code, body := obsGet(t, d, "/readyz")
		return code == http.StatusOK, fmt.Sprintf("/readyz: %d %s", code, body)
	})

	// Series exist at 0 before anything happened.
	before := scrape(t, d)
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"berth_pulls_total", []string{"result", "success"}},
		{"berth_pulls_total", []string{"result", "error"}},
		{"berth_pull_bytes_total", nil},
		{"berth_pull_duration_seconds_count", nil},
		{"berth_api_requests_total", []string{"service", "berth.images.v1.Images", "method", "Pull", "code", "OK"}},
		{"berth_reconcile_total", []string{"kind", "Task", "result", "error"}},
		{"berth_drift_repairs_total", []string{"kind", "Container"}},
		{"berth_events_dropped_total", nil},
		{"berth_manifest_errors_total", nil},
		{"berth_events_published_total", []string{"topic", "/images/create"}},
	} {
		if v := mustMetric(t, before, s.name, s.labels...); v != 0 {
			t.Errorf("%s%v at start: got %v, want 0", s.name, s.labels, v)
		}
	}
	for _, name := range []string{"berth_queue_depth", "berth_desired_objects", "berth_ready_objects", "berth_content_bytes",
		"berth_snapshot_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		mustMetric(t, before, name)
	}

	images := startEvents(t, d, "topic~=/images/")
	d.MustCLI(t, "namespace", "create", "x")
	inX := startEvents(t, d, "namespace==x")

	d.MustCLI(t, "image", "pull", ref)
	d.MustCLI(t, "-n", "x", "image", "pull", ref)
	d.MustCLI(t, "namespace", "create", "other")
	d.MustCLI(t, "image", "rm", ref)
	images.waitFor(t, "default", "/images/delete")
	inX.waitFor(t, "x", "/images/create")

	// Only /images/ topics, in the order they happened: create in default,
	// create in x, delete in default (updates, e.g. for an unpack, may sit
	// between them).
	var seq []string
	for _, e := range images.events(t) {
		if !strings.HasPrefix(e.Topic, "/images/") {
			t.Errorf("topic~=/images/ delivered %s", e.Topic)
		}
		if e.Topic != "/images/update" {
			seq = append(seq, e.Namespace+" "+e.Topic)
		}
		var payload struct{ Name string }
		if err := json.Unmarshal(e.Event, &payload); err != nil || payload.Name != ref {
			t.Errorf("event %s payload %s: want name %s", e.Topic, e.Event, ref)
		}
	}
	if want := []string{"default /images/create", "x /images/create", "default /images/delete"}; strings.Join(seq, ",") != strings.Join(want, ",") {
		t.Errorf("image events: got %v, want %v", seq, want)
	}
	for _, e := range inX.events(t) {
		if e.Namespace != "x" {
			t.Errorf("namespace==x delivered %s %s", e.Namespace, e.Topic)
		}
	}
	if got := topics(inX.events(t)); len(got) == 0 || got[0] != "x /images/create" {
		t.Errorf("namespace==x: got %v, want x /images/create first", got)
	}

	after := scrape(t, d)
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"berth_pulls_total", []string{"result", "success"}, 2},
		{"berth_pull_duration_seconds_count", nil, 2},
		{"berth_pull_bytes_total", nil, 1},
		{"berth_api_requests_total", []string{"service", "berth.images.v1.Images", "method", "Pull", "code", "OK"}, 2},
		{"berth_api_requests_total", []string{"service", "berth.namespaces.v1.Namespaces", "method", "Create", "code", "OK"}, 2},
		{"berth_events_published_total", []string{"topic", "/images/create"}, 2},
		{"berth_events_published_total", []string{"topic", "/images/delete"}, 1},
		{"berth_content_blobs", nil, 2},
	} {
		if v := mustMetric(t, after, c.name, c.labels...); v < c.min {
			t.Errorf("%s%v after the pulls: got %v, want >= %v", c.name, c.labels, v, c.min)
		}
	}
	// The second pull found every blob in the store: it downloaded nothing.
	bytes := mustMetric(t, after, "berth_pull_bytes_total")
	if v := mustMetric(t, after, "berth_content_bytes"); bytes > v+1<<20 {
		t.Errorf("pull bytes %v exceed the content store's %v: the second pull was counted", bytes, v)
	}
	// A failed pull is counted as one, with its error code.
	if r := d.CLI("image", "pull", reg.Addr+"/nope:latest"); r.ExitCode == 0 {
		t.Fatalf("pull of a missing image succeeded: %s", r)
	}
	failed := scrape(t, d)
	if v := mustMetric(t, failed, "berth_pulls_total", "result", "error"); v != 1 {
		t.Errorf("failed pulls: got %v, want 1", v)
	}
	if v := mustMetric(t, failed, "berth_api_requests_total", "method", "Pull", "code", "NotFound"); v != 1 {
		t.Errorf("failed Pull calls with code NotFound: got %v, want 1", v)
	}
}

// TestObservability_StuckSubscriber stops a `berth events` process (SIGSTOP)
// so it reads nothing, then runs bursts of API operations: they finish
// about as fast as without it, and berthd drops the events it cannot take.
func TestObservability_StuckSubscriber(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "info"})
	conn, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	ns := nsapi.NewNamespacesClient(client)
	ctx := context.Background()
	next := 0
	burst := func(n int) time.Duration {
		start := time.Now()
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("burst-%d", next)
			next++
			if _, err := ns.Create(ctx, &nsapi.CreateNamespaceRequest{Namespace: &nsapi.Namespace{Name: name}}); err != nil {
				t.Fatal(err)
			}
			if _, err := ns.Delete(ctx, &nsapi.DeleteNamespaceRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	baseline := burst(100) // 200 operations

	sub := startEvents(t, d)
	if err := syscall.Kill(sub.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(sub.cmd.Process.Pid, syscall.SIGCONT)
	// Fill everything between berthd and the stopped reader (the bus's
	// queue, the stream, the socket buffers) until berthd drops events.
	total := time.Duration(0)
	bursts := 0
	for {
		took := burst(100)
		total += took
		bursts++
		if took > 10*baseline+2*time.Second {
			t.Fatalf("burst %d of 200 operations with a stuck subscriber took %v, baseline %v", bursts, took, baseline)
		}
		if mustMetric(t, scrape(t, d), "berth_events_dropped_total") > 0 {
			break
		}
		if bursts == 30 {
			t.Fatalf("no event dropped after %d operations to a stopped subscriber", bursts*200)
		}
	}
	t.Logf("200 operations: %v without a subscriber, %v on average with a stopped one (%d bursts until drops)",
		baseline, total/time.Duration(bursts), bursts)
	// berthd still answers and still publishes to others.
	other := startEvents(t, d, "topic==/namespaces/create")
	d.MustCLI(t, "namespace", "create", "after")
	other.waitFor(t, "after", "/namespaces/create")
}

// TestObservability_Stats runs a container and reads its cgroup figures
// through `berth stats --no-stream` and the per-container series.
func TestObservability_Stats(t *testing.T) {
	d := runDaemon(t)
	d.MustCLI(t, "run", "-d", "busybox:latest", "statme", "sh", "-c", "while true; do :; done")
	waitStatus(t, d, "statme", "running")

	var rows []struct {
		Name        string  `json:"name"`
		CPUPercent  float64 `json:"cpuPercent"`
		MemoryUsage uint64  `json:"memoryUsage"`
		Pids        uint64  `json:"pids"`
	}
	out := d.MustCLI(t, "stats", "--no-stream", "--interval", "200ms", "-o", "json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("stats -o json: %v\n%s", err, out)
	}
	if len(rows) != 1 || rows[0].Name != "statme" || rows[0].Pids < 1 || rows[0].MemoryUsage == 0 || rows[0].CPUPercent <= 0 {
		t.Errorf("stats: got %+v, want statme with pids, memory and CPU (a busy loop)", rows)
	}
	if table := d.MustCLI(t, "stats", "--no-stream", "--interval", "100ms"); !strings.Contains(table, "MEM USAGE / LIMIT") || !strings.Contains(table, "statme") {
		t.Errorf("stats table:\n%s", table)
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		body := scrape(t, d)
		cpu, ok1 := metric(body, "berth_container_cpu_seconds_total", "namespace", "default", "name", "statme")
		pids, ok2 := metric(body, "berth_container_pids", "namespace", "default", "name", "statme")
		mem, ok3 := metric(body, "berth_container_memory_bytes", "namespace", "default", "name", "statme")
		return ok1 && ok2 && ok3 && cpu > 0 && pids >= 1 && mem > 0, fmt.Sprintf("cpu %v pids %v mem %v", cpu, pids, mem)
	})
	d.MustCLI(t, "task", "kill", "--signal", "KILL", "statme")
}

// obsConfig refreshes the object gauges and repairs drift every second,
// and relists the manifest directory as often.
const obsConfig = "reconcile: {resync: 1s, relist: 1s}\n"

// archiveImageManifest writes the busybox test layout as an OCI archive
// (a tar of the layout) under dir and declares an Image sourced from it.
func archiveImageManifest(t *testing.T, dir string) string {
	t.Helper()
	layout := filepath.Join(testutil.TestImages(t, "busybox"), "busybox")
	path := filepath.Join(dir, "busybox.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(layout)); err != nil {
		t.Fatalf("tar %s: %v", layout, err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec:
  ref: example.local/busybox:latest
  pullPolicy: Never
  source: {archive: %s}
`, path)
}

// idleManifest is a Container with no Task: nothing holds it, so it can be
// removed behind berth's back through the imperative CLI.
const idleManifest = `apiVersion: berth.dev/v1
kind: Container
metadata: {name: idle}
spec: {image: busybox, command: ["true"]}
`

// TestObservability_RunRestartRepair scrapes /metrics after a manifest
// runs, after a kill -9 of its task, after a berthd restart and after a
// drift repair, and checks that each series moved as it should.
func TestObservability_RunRestartRepair(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: obsConfig, LogLevel: "info"})
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), archiveImageManifest(t, t.TempDir()))
	writeAtomic(t, filepath.Join(d.Manifests, "web.yaml"), taskManifest("web", "hello", "Always"))
	writeAtomic(t, filepath.Join(d.Manifests, "idle.yaml"), idleManifest)
	first := waitTask(t, d, "web", 0)

	// Running: reconciles counted, the object gauges (refreshed on each
	// resync) say one Task desired and ready, the cgroup series have figures.
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		body := scrape(t, d)
		rec, _ := metric(body, "berth_reconcile_total", "kind", "Task", "result", "success")
		des, _ := metric(body, "berth_desired_objects", "kind", "Task")
		rdy, _ := metric(body, "berth_ready_objects", "kind", "Task")
		ctrs, _ := metric(body, "berth_desired_objects", "kind", "Container")
		mem, _ := metric(body, "berth_container_memory_bytes", "namespace", "default", "name", "web")
		pids, _ := metric(body, "berth_container_pids", "namespace", "default", "name", "web")
		return rec > 0 && des == 1 && rdy == 1 && ctrs == 2 && mem > 0 && pids >= 1,
			fmt.Sprintf("reconcile{Task,success} %v desired{Task} %v ready{Task} %v desired{Container} %v memory %v pids %v",
				rec, des, rdy, ctrs, mem, pids)
	})

	// A CLI call is counted once under its service and method; berthd
	// itself calls nothing through the API.
	list := []string{"service", "berth.tasks.v1.Tasks", "method", "List", "code", "OK"}
	calls := mustMetric(t, scrape(t, d), "berth_api_requests_total", list...)
	runtimeTasks(t, d)
	if got := mustMetric(t, scrape(t, d), "berth_api_requests_total", list...); got != calls+1 {
		t.Errorf("berth_api_requests_total%v after one `berth task ls`: got %v, want %v", list, got, calls+1)
	}

	// kill -9 under restartPolicy Always: one /tasks/exit, a new process.
	exitTopic := []string{"topic", "/tasks/exit"}
	exits := mustMetric(t, scrape(t, d), "berth_events_published_total", exitTopic...)
	if err := syscall.Kill(first.task().Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", first.task().Pid, err)
	}
	second := waitTask(t, d, "web", first.task().Pid)
	if second.task().RestartCount < 1 {
		t.Errorf("restartCount %d after a kill -9, want >= 1", second.task().RestartCount)
	}
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		got := mustMetric(t, scrape(t, d), "berth_events_published_total", exitTopic...)
		return got == exits+1, fmt.Sprintf("berth_events_published_total%v: got %v, want %v", exitTopic, got, exits+1)
	})
	before := scrape(t, d)
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"berth_events_published_total", exitTopic},
		{"berth_events_published_total", []string{"topic", "/tasks/start"}},
		{"berth_api_requests_total", list},
	} {
		if v := mustMetric(t, before, c.name, c.labels...); v == 0 {
			t.Fatalf("%s%v before the restart: 0, want > 0", c.name, c.labels)
		}
	}

	// berthd restarted: the counters start again from zero, every pre-set
	// series is there, and the task keeps running as the same process.
	d.Restart()
	after := scrape(t, d) // before any CLI call
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"berth_events_published_total", exitTopic},
		{"berth_api_requests_total", list},
		{"berth_pulls_total", []string{"result", "success"}},
		{"berth_reconcile_total", []string{"kind", "Task", "result", "error"}},
		{"berth_drift_repairs_total", []string{"kind", "Image"}},
		{"berth_drift_repairs_total", []string{"kind", "Container"}},
		{"berth_drift_repairs_total", []string{"kind", "Task"}},
		{"berth_manifest_errors_total", nil},
	} {
		if v := mustMetric(t, after, c.name, c.labels...); v != 0 {
			t.Errorf("%s%v after the restart: got %v, want 0", c.name, c.labels, v)
		}
	}
	for _, k := range []string{"Image", "Container", "Task"} {
		mustMetric(t, after, "berth_desired_objects", "kind", k)
		mustMetric(t, after, "berth_ready_objects", "kind", k)
		mustMetric(t, after, "berth_queue_depth", "kind", k)
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		code, body := obsGet(t, d, "/readyz")
		return code == http.StatusOK, fmt.Sprintf("/readyz after the restart: %d %s", code, body)
	})
	third := waitTask(t, d, "web", 0)
	if third.task().Pid != second.task().Pid || third.task().RestartCount != second.task().RestartCount {
		t.Errorf("berthd restart restarted the task: pid %d restarts %d, want pid %d restarts %d",
			third.task().Pid, third.task().RestartCount, second.task().Pid, second.task().RestartCount)
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		body := scrape(t, d)
		rec, _ := metric(body, "berth_reconcile_total", "kind", "Task", "result", "success")
		des, _ := metric(body, "berth_desired_objects", "kind", "Task")
		rdy, _ := metric(body, "berth_ready_objects", "kind", "Task")
		return rec > 0 && des == 1 && rdy == 1,
			fmt.Sprintf("after the restart: reconcile{Task,success} %v desired{Task} %v ready{Task} %v", rec, des, rdy)
	})
	if v := mustMetric(t, scrape(t, d), "berth_events_published_total", "topic", "/tasks/start"); v != 0 {
		t.Errorf("/tasks/start published %v times after the restart, want 0", v)
	}

	// Drift: the idle Container removed behind berth's back is recreated,
	// counted as a repair of a Container and published as /reconcile/repair.
	repairs := startEvents(t, d, "topic==/reconcile/repair")
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		o := getObjects(t, d, "containers")["idle"]
		return o.ready(), fmt.Sprintf("idle: %+v", o.Status)
	})
	d.MustCLI(t, "container", "rm", "idle")
	repairs.waitFor(t, "default", "/reconcile/repair")
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		body := scrape(t, d)
		ctr, _ := metric(body, "berth_drift_repairs_total", "kind", "Container")
		pub, _ := metric(body, "berth_events_published_total", "topic", "/reconcile/repair")
		return ctr == 1 && pub >= 1, fmt.Sprintf("berth_drift_repairs_total{Container} %v (want 1), events_published{/reconcile/repair} %v", ctr, pub)
	})
	for _, e := range repairs.events(t) {
		var p struct{ Kind, Name string }
		if err := json.Unmarshal(e.Event, &p); err != nil || p.Kind != "Container" || p.Name != "idle" {
			t.Errorf("/reconcile/repair payload %s: want Container idle", e.Event)
		}
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		ls := d.MustCLI(t, "container", "ls")
		return strings.Contains(ls, "idle"), "idle not recreated:\n" + ls
	})
	if v := mustMetric(t, scrape(t, d), "berth_drift_repairs_total", "kind", "Task"); v != 0 {
		t.Errorf("berth_drift_repairs_total{Task}: got %v, want 0 (only a Container drifted)", v)
	}
}

// TestObservability_ReadyzWaitsForManifests points berthd at a manifest
// directory that does not exist yet: /readyz stays 503 while the directory
// cannot be read, however often it is relisted, and turns 200 once the
// directory appears and every object it declares was reconciled once; the
// Task then runs.
func TestObservability_ReadyzWaitsForManifests(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	base := t.TempDir()
	dir := filepath.Join(base, "manifests")
	d := harness.StartDaemon(t, harness.DaemonOptions{Manifests: dir, Config: obsConfig, LogLevel: "info"})

	if code, body := obsGet(t, d, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: got %d %q, want 200", code, body)
	}
	// Each failed read of the directory is reported as a manifest error;
	// wait for two (the first read and a relist a second later).
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		n := mustMetric(t, scrape(t, d), "berth_manifest_errors_total")
		return n >= 2, fmt.Sprintf("berth_manifest_errors_total %v, want >= 2 failed reads of %s", n, dir)
	})
	if code, body := obsGet(t, d, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the manifest directory missing: got %d %q, want 503", code, body)
	} else if !strings.Contains(body, dir) || !strings.Contains(body, "no such file") {
		t.Errorf("/readyz body %q does not name the missing directory %s", body, dir)
	}
	if out := d.MustCLI(t, "get", "sources"); !strings.Contains(out, dir) || !strings.Contains(out, "no such file") {
		t.Errorf("berth get sources does not report the missing directory %s:\n%s", dir, out)
	}

	// The directory appears whole (built beside it and renamed into place).
	tmp := filepath.Join(base, ".manifests.tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"busybox.yaml": archiveImageManifest(t, base),
		"web.yaml":     taskManifest("web", "ready", "Always"),
	} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := obsGet(t, d, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the directory appeared: got %d %q, want 503", code, body)
	}
	created := time.Now()
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	// Ready means every source was read and every object it declares was
	// reconciled once (controller.Options.OnReady): when /readyz first says
	// 200, the Task read from the new directory must have a status of this
	// generation. Reconciled once is not running yet: the Task may still
	// wait for its Container, so running is checked after.
	var atReady declObject
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		code, body := obsGet(t, d, "/readyz")
		if code != http.StatusOK {
			return false, fmt.Sprintf("/readyz: %d %s", code, body)
		}
		atReady = getObjects(t, d, "tasks")["web"]
		return true, ""
	})
	cond, _ := atReady.Status.Condition(spec.ConditionReady)
	t.Logf("directory created to /readyz 200: %v; Task web then: state %q pid %d, Ready %s %s",
		time.Since(created), atReady.task().State, atReady.task().Pid, cond.Status, cond.Reason)
	if _, ok := atReady.Status.Condition(spec.ConditionReady); !ok || atReady.Generation == 0 ||
		atReady.Status.ObservedGeneration < atReady.Generation {
		t.Errorf("/readyz 200 before Task web of the new directory was reconciled once: generation %d, status %+v",
			atReady.Generation, atReady.Status)
	}
	waitTask(t, d, "web", 0)
	if code, body := obsGet(t, d, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the task running: got %d %q, want 200", code, body)
	}
}

// TestObservability_ReadyzDefaultManifestsMissing starts berthd with no
// --manifests flag on a host without /etc/berth/manifests: the default
// directory nobody created counts as empty, so the node is ready.
func TestObservability_ReadyzDefaultManifestsMissing(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	const def = "/etc/berth/manifests"
	if _, err := os.Stat(def); !errors.Is(err, fs.ErrNotExist) {
		// The host's own directory cannot be hidden from berthd here.
		testutil.Missing(t, def+" must not exist for this test (stat: %v)", err)
	}
	d := harness.StartDaemon(t, harness.DaemonOptions{DefaultManifests: true, Config: obsConfig, LogLevel: "info"})
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		code, body := obsGet(t, d, "/readyz")
		return code == http.StatusOK, fmt.Sprintf("/readyz: %d %q, want 200 with the default manifest directory missing", code, body)
	})
	if out := d.MustCLI(t, "get", "sources"); strings.Contains(out, "no such file") {
		t.Errorf("berth get sources reports the missing default directory as an error:\n%s", out)
	}
}
