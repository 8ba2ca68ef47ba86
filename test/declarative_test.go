package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/spec"
	"berth.dev/berth/test/harness"
)

// The declarative end-to-end tests: manifests in a watched directory and
// through berth apply, reconciled by a real berthd with real runc.

// declConfig makes drift repair and the directory relist fast.
const declConfig = "reconcile: {resync: 1s, relist: 1s}\n"

// startDecl starts berthd watching dir ("" for a fresh one).
func startDecl(t *testing.T, dir string) *harness.Daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	return harness.StartDaemon(t, harness.DaemonOptions{Manifests: dir, Config: declConfig, LogLevel: "info"})
}

// imageManifest declares busybox from the test image's OCI layout, so
// nothing is fetched from a network.
func imageManifest(t *testing.T) string {
	t.Helper()
	layout := filepath.Join(testutil.TestImages(t, "busybox"), "busybox")
	return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec:
  ref: example.local/busybox:latest
  pullPolicy: Never
  source: {layout: %s}
`, layout)
}

// taskManifest is a Container and its Task. The process prints its
// GREETING and exits promptly on SIGTERM (a shell as pid 1 ignores it
// otherwise, and a stop would wait for the timeout).
func taskManifest(name, greeting, policy string) string {
	return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Container
metadata: {name: %[1]s}
spec:
  image: busybox
  command: [sh, -c, 'trap "exit 0" TERM; echo "greeting=$GREETING"; while true; do sleep 0.1; done']
  env: [{name: GREETING, value: %[2]s}]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, restartPolicy: %[3]s, stopTimeout: 2s}
`, name, greeting, policy)
}

// writeAtomic writes a file as an editor or git-sync would: a dotfile
// (ignored by berth) renamed over the target.
func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// declObject is what `berth get -o json` prints of an object.
type declObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name, Namespace string
		Labels          map[string]string
	} `json:"metadata"`
	Source     string      `json:"source"`
	Generation int64       `json:"generation"`
	Status     spec.Status `json:"status"`
}

func (o declObject) ready() bool {
	c, ok := o.Status.Condition(spec.ConditionReady)
	return ok && c.Status == spec.ConditionTrue && o.Status.ObservedGeneration >= o.Generation
}

func (o declObject) task() spec.TaskStatus {
	if o.Status.TaskStatus == nil {
		return spec.TaskStatus{}
	}
	return *o.Status.TaskStatus
}

// getObjects lists the declared objects of a kind by name.
func getObjects(t *testing.T, d *harness.Daemon, kind string) map[string]declObject {
	t.Helper()
	var objs []declObject
	out := d.MustCLI(t, "get", kind, "-o", "json")
	if err := json.Unmarshal([]byte(out), &objs); err != nil {
		t.Fatalf("get %s: %v\n%s", kind, err, out)
	}
	m := map[string]declObject{}
	for _, o := range objs {
		m[o.Metadata.Name] = o
	}
	return m
}

// waitTask waits until the Task is running and ready and returns it; the
// pid must differ from notPid (0: any).
func waitTask(t *testing.T, d *harness.Daemon, name string, notPid int) declObject {
	t.Helper()
	var got declObject
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		got = getObjects(t, d, "tasks")[name]
		ts := got.task()
		return got.ready() && ts.State == "running" && ts.Pid > 0 && ts.Pid != notPid,
			fmt.Sprintf("task %s: %+v %+v (want running, pid not %d)", name, ts, got.Status.Conditions, notPid)
	})
	return got
}

// waitImage waits until the busybox Image is ready (imported and unpacked).
func waitImage(t *testing.T, d *harness.Daemon) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		img := getObjects(t, d, "images")["busybox"]
		return img.ready(), fmt.Sprintf("image: %+v", img.Status.Conditions)
	})
}

// runtimeTasks is `berth task ls` by id.
func runtimeTasks(t *testing.T, d *harness.Daemon) map[string]taskJSON { return tasks(t, d) }

func TestDeclarative_DirectoryLifecycle(t *testing.T) {
	d := startDecl(t, "")
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	waitImage(t, d)

	// A manifest renamed into the directory runs within a second (the
	// image is already unpacked).
	web := filepath.Join(d.Manifests, "web.yaml")
	start := time.Now()
	writeAtomic(t, web, taskManifest("web", "hello", "Always"))
	var first declObject
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		first = getObjects(t, d, "tasks")["web"]
		return first.task().Pid > 0 && first.task().State == "running", fmt.Sprintf("%+v", first.Status)
	})
	took := time.Since(start)
	t.Logf("manifest to running (polled with berth get): %v", took)
	if took > time.Second {
		t.Errorf("task running %v after the manifest was written, want within 1s", took)
	}
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		r := d.CLI("logs", "web")
		return strings.Contains(r.Stdout, "greeting=hello"), r.String()
	})

	// Editing the env recreates the container: a new process sees it.
	writeAtomic(t, web, taskManifest("web", "bye", "Always"))
	second := waitTask(t, d, "web", first.task().Pid)
	if r := d.MustCLI(t, "task", "exec", "web", "sh", "-c", "echo $GREETING"); strings.TrimSpace(r) != "bye" {
		t.Errorf("env after the edit: got %q, want bye", r)
	}
	pid := second.task().Pid

	// A half-written file (an in-place write cut short) keeps the running
	// version and reports the error.
	full := taskManifest("web", "third", "Always")
	if err := os.WriteFile(web, []byte(full[:strings.Index(full, "env:")+10]), 0o644); err != nil {
		t.Fatal(err)
	}
	sourceError(t, d, "web.yaml")
	// An invalid file does the same, and the error names the field.
	bad := strings.Replace(full, "env:", "resources: {memory: 64Q}\n  env:", 1)
	writeAtomic(t, web, bad)
	msg := sourceError(t, d, `spec.resources.memory: "64Q"`)
	if !strings.Contains(msg, "web.yaml: document 1: Container default/web:") {
		t.Errorf("error %q does not name file, document and object", msg)
	}
	if got := waitTask(t, d, "web", 0); got.task().Pid != pid {
		t.Errorf("a broken file changed the task: pid %d, want %d", got.task().Pid, pid)
	}
	// describe shows the file's error and its /manifests/error event
	// (published within a second of the error).
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		desc := d.MustCLI(t, "describe", "task", "web")
		return strings.Contains(desc, "SourceError:") && strings.Contains(desc, "/manifests/error"), desc
	})

	// Removing the file stops and removes the task and its container.
	if err := os.Remove(web); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		_, task := runtimeTasks(t, d)["web"]
		ctrs := d.MustCLI(t, "container", "ls")
		return !task && !strings.Contains(ctrs, "web"), "task or container web still there:\n" + ctrs
	})
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("process %d still alive after its manifest was removed", pid)
	}
}

// sourceError waits until `berth get` reports a source error containing
// want on stderr, and returns that line.
func sourceError(t *testing.T, d *harness.Daemon, want string) string {
	t.Helper()
	var line string
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		r := d.CLI("get", "tasks")
		for _, l := range strings.Split(r.Stderr, "\n") {
			if strings.HasPrefix(l, "error: ") && strings.Contains(l, want) {
				line = l
				return true, ""
			}
		}
		return false, r.String()
	})
	return line
}

func TestDeclarative_SymlinkSwapAndRestart(t *testing.T) {
	base := t.TempDir()
	img := imageManifest(t)
	for rev, files := range map[string]map[string]string{
		"rev1": {"busybox.yaml": img, "a.yaml": taskManifest("a", "same", "Always"), "b.yaml": taskManifest("b", "one", "Always")},
		"rev2": {"busybox.yaml": img, "a.yaml": taskManifest("a", "same", "Always"), "b.yaml": taskManifest("b", "two", "Always"),
			"c.yaml": taskManifest("c", "new", "Always")},
	} {
		if err := os.MkdirAll(filepath.Join(base, rev), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(base, rev, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	current := filepath.Join(base, "current")
	if err := os.Symlink("rev1", current); err != nil {
		t.Fatal(err)
	}
	d := startDecl(t, current)
	a1, b1 := waitTask(t, d, "a", 0), waitTask(t, d, "b", 0)

	// git-sync: a new link renamed over the old one.
	if err := os.Symlink("rev2", filepath.Join(base, ".current.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(base, ".current.tmp"), current); err != nil {
		t.Fatal(err)
	}
	b2 := waitTask(t, d, "b", b1.task().Pid)
	c2 := waitTask(t, d, "c", 0)
	a2 := waitTask(t, d, "a", 0)
	if a2.task().Pid != a1.task().Pid {
		t.Errorf("a did not change but was restarted: pid %d → %d", a1.task().Pid, a2.task().Pid)
	}

	// berthd restarted: nothing restarts, status is rebuilt.
	d.Restart()
	for name, want := range map[string]declObject{"a": a2, "b": b2, "c": c2} {
		got := waitTask(t, d, name, 0)
		if got.task().Pid != want.task().Pid || got.task().RestartCount != want.task().RestartCount {
			t.Errorf("%s after a berthd restart: pid %d restarts %d, want pid %d restarts %d",
				name, got.task().Pid, got.task().RestartCount, want.task().Pid, want.task().RestartCount)
		}
	}
	for id, tk := range runtimeTasks(t, d) {
		if tk.Status != "running" {
			t.Errorf("task %s after restart: %+v", id, tk)
		}
	}
}

func TestDeclarative_ApplyDiffConflictPrune(t *testing.T) {
	d := startDecl(t, "")
	// A file in the watched directory owns Task "owned".
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	writeAtomic(t, filepath.Join(d.Manifests, "owned.yaml"), taskManifest("owned", "file", "Always"))
	waitTask(t, d, "owned", 0)

	app := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(app, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("x.yaml", taskManifest("x", "x1", "Always"))
	write("yy.yaml", taskManifest("yy", "y1", "Always"))
	// An Image whose source is relative to the applied file's directory.
	if err := os.Symlink(filepath.Join(testutil.TestImages(t, "busybox"), "busybox"), filepath.Join(app, "layout")); err != nil {
		t.Fatal(err)
	}
	write("img.yaml", `apiVersion: berth.dev/v1
kind: Image
metadata: {name: relative}
spec: {ref: example.local/relative:1, source: {layout: layout}}
`)
	write(".hidden.yaml", "not: [a manifest") // ignored like in the watched directory
	write("y.yaml~", "not: [a manifest")
	r := d.CLI("apply", "-f", app, "--applyset", "app", "--wait", "--timeout", "30s")
	if r.ExitCode != 0 {
		t.Fatalf("%s", r)
	}
	for _, want := range []string{"Image default/relative created", "Container default/x created", "Task default/yy created"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("apply output lacks %q:\n%s", want, r.Stdout)
		}
	}
	x := waitTask(t, d, "x", 0)
	waitTask(t, d, "yy", 0)
	if x.Source != "api" {
		t.Errorf("x source: got %q, want api", x.Source)
	}

	// diff: 0 when nothing differs, 1 with the change and the action, 2 on error.
	if r := d.CLI("diff", "-f", app); r.ExitCode != 0 {
		t.Errorf("diff of what is in force: %s", r)
	}
	write("x.yaml", taskManifest("x", "x2", "Always"))
	r = d.CLI("diff", "-f", filepath.Join(app, "x.yaml"))
	if r.ExitCode != 1 || !strings.Contains(r.Stdout, "+    value: x2") || !strings.Contains(r.Stdout, "recreate (spec.env)") ||
		!strings.Contains(r.Stdout, "restart") {
		t.Errorf("diff of a changed env: want exit 1, the line and recreate (spec.env), restart: %s", r)
	}
	write("bad.yaml", strings.Replace(taskManifest("z", "z", "Always"), "restartPolicy: Always", "restartPolicy: Sometimes", 1))
	r = d.CLI("diff", "-f", filepath.Join(app, "bad.yaml"))
	if r.ExitCode < 2 || !strings.Contains(r.Stderr, "bad.yaml: document 2: Task default/z: spec.restartPolicy") {
		t.Errorf("diff of an invalid file: want exit >= 2 naming the field: %s", r)
	}
	os.Remove(filepath.Join(app, "bad.yaml"))

	// Conflict: the file keeps its object; apply reports it and exits 1.
	r = d.CLIStdin(taskManifest("owned", "api", "Always"), "apply", "-f", "-")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "Task default/owned conflict") || !strings.Contains(r.Stderr, "owned.yaml") {
		t.Errorf("apply of a file's object: want exit 2 and a conflict naming owned.yaml: %s", r)
	}
	if o := getObjects(t, d, "tasks")["owned"]; !strings.HasSuffix(o.Source, "owned.yaml") {
		t.Errorf("owned source after a conflicting apply: %q", o.Source)
	}
	r = d.CLI("delete", "task", "owned")
	if r.ExitCode == 0 || !strings.Contains(r.Stderr, "owned.yaml") {
		t.Errorf("delete of a file's object: want an error naming owned.yaml: %s", r)
	}

	// --prune: yy is no longer in the set and goes; x (unchanged here) stays.
	write("x.yaml", taskManifest("x", "x1", "Always"))
	os.Remove(filepath.Join(app, "yy.yaml"))
	r = d.CLI("apply", "-f", app, "--applyset", "app", "--prune")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "Task default/yy pruned") || !strings.Contains(r.Stdout, "Task default/x unchanged") {
		t.Fatalf("apply --prune: %s", r)
	}
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		_, ok := runtimeTasks(t, d)["yy"]
		return !ok, "task yy still on the node"
	})
	if got := waitTask(t, d, "x", 0); got.task().Pid != x.task().Pid {
		t.Errorf("prune restarted x: pid %d, want %d", got.task().Pid, x.task().Pid)
	}
	if got := waitTask(t, d, "owned", 0); got.Source == "api" {
		t.Errorf("prune touched the file's object")
	}

	// delete KIND NAME of an applied object.
	d.MustCLI(t, "delete", "task", "x")
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		_, ok := runtimeTasks(t, d)["x"]
		return !ok, "task x still on the node"
	})
}

func TestDeclarative_RestartPoliciesAndRepair(t *testing.T) {
	d := startDecl(t, "")
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	for name, policy := range map[string]string{"always": "Always", "onfailure": "OnFailure", "never": "Never"} {
		writeAtomic(t, filepath.Join(d.Manifests, name+".yaml"), taskManifest(name, name, policy))
	}
	// A Container with no Task: its snapshot is not mounted, so it can be
	// removed behind berth's back through the snapshots API.
	writeAtomic(t, filepath.Join(d.Manifests, "idle.yaml"), `apiVersion: berth.dev/v1
kind: Container
metadata: {name: idle}
spec: {image: busybox, command: ["true"]}
`)
	before := map[string]declObject{}
	for _, name := range []string{"always", "onfailure", "never"} {
		before[name] = waitTask(t, d, name, 0)
	}
	for name, o := range before {
		if err := syscall.Kill(o.task().Pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %s (%d): %v", name, o.task().Pid, err)
		}
	}
	for _, name := range []string{"always", "onfailure"} {
		got := waitTask(t, d, name, before[name].task().Pid)
		if got.task().RestartCount < 1 {
			t.Errorf("%s: restartCount %d after a kill -9, want >= 1", name, got.task().RestartCount)
		}
	}
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		o := getObjects(t, d, "tasks")["never"]
		return o.task().State == "exited" && o.task().ExitCode == 137, fmt.Sprintf("never: %+v", o.task())
	})
	// Still exited a few resyncs later.
	time.Sleep(2 * time.Second)
	if o := getObjects(t, d, "tasks")["never"]; o.task().State != "exited" || o.task().RestartCount != 0 {
		t.Errorf("Never task was restarted: %+v", o.task())
	}

	// The idle container's snapshot removed behind berth's back is repaired.
	var snapKey string
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		o := getObjects(t, d, "containers")["idle"]
		if o.ready() && o.Status.ContainerStatus != nil {
			snapKey = o.Status.SnapshotKey
		}
		return snapKey != "", fmt.Sprintf("idle: %+v", o.Status)
	})
	// The snapshots API is namespaced: its key is the status's without
	// the "<namespace>/" prefix.
	snapKey = strings.TrimPrefix(snapKey, "default/")
	d.MustCLI(t, "snapshot", "rm", snapKey)
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		ls := d.MustCLI(t, "snapshot", "ls")
		desc := d.MustCLI(t, "describe", "container", "idle")
		return strings.Contains(ls, "\n"+snapKey+" ") && strings.Contains(desc, "/reconcile/repair"),
			"snapshot not back or no repair event:\n" + ls + "\n" + desc
	})
}

// TestDeclarative_NamespaceFlag: -n names the namespace of objects that
// name none, for apply, diff and delete -f alike.
func TestDeclarative_NamespaceFlag(t *testing.T) {
	d := startDecl(t, t.TempDir())
	f := filepath.Join(t.TempDir(), "img.yaml")
	if err := os.WriteFile(f, []byte(imageManifest(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := d.MustCLI(t, "-n", "edge", "apply", "--wait", "-f", f); !strings.Contains(out, "Image edge/busybox created") {
		t.Fatalf("apply -n edge: %q", out)
	}
	if r := d.CLI("-n", "edge", "diff", "-f", f); r.ExitCode != 0 {
		t.Errorf("diff -n edge of what was applied: want exit 0, got %s", r)
	}
	if r := d.CLI("diff", "-f", f); r.ExitCode != 1 {
		t.Errorf("diff in default of an object applied to edge: want exit 1, got %s", r)
	}
	if out := d.MustCLI(t, "-n", "edge", "delete", "-f", f); !strings.Contains(out, "edge/busybox") {
		t.Errorf("delete -n edge -f: %q", out)
	}
}

// TestDeclarative_BrokenFileAcrossRestart: a manifest torn while berthd was
// down (a power cut mid-write) keeps what it declared running: the file
// fails to parse, and nothing it declared is torn down.
func TestDeclarative_BrokenFileAcrossRestart(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: declConfig, LogLevel: "debug"})
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	waitImage(t, d)
	web := filepath.Join(d.Manifests, "web.yaml")
	full := taskManifest("web", "hello", "Always")
	writeAtomic(t, web, full)
	first := waitTask(t, d, "web", 0)
	d.Stop()
	if err := os.WriteFile(web, []byte(full[:strings.Index(full, "env:")+10]), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute) // settled: read at once
	os.Chtimes(web, old, old)
	d.Restart()
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		return strings.Contains(d.Log(), "keeping an undeclared object"), "waiting for the controller to consider the orphaned objects"
	})
	ts := runtimeTasks(t, d)
	if got := ts["web"]; got.Pid != first.task().Pid || got.Status != "running" {
		t.Fatalf("task web after a restart with its file torn: %+v, want running with pid %d", got, first.task().Pid)
	}
	// Mending the file brings it back under management, unchanged.
	writeAtomic(t, web, full)
	if o := waitTask(t, d, "web", 0); o.task().Pid != first.task().Pid {
		t.Errorf("mending the file restarted the task: pid %d, want %d", o.task().Pid, first.task().Pid)
	}
}

// TestDeclarative_TaskRenamedInPlace: renaming a Task object (same
// container) does not restart what it runs.
func TestDeclarative_TaskRenamedInPlace(t *testing.T) {
	d := startDecl(t, "")
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	waitImage(t, d)
	web := filepath.Join(d.Manifests, "web.yaml")
	writeAtomic(t, web, taskManifest("web", "hello", "Always"))
	first := waitTask(t, d, "web", 0)
	renamed := strings.Replace(taskManifest("web", "hello", "Always"), "kind: Task\nmetadata: {name: web}", "kind: Task\nmetadata: {name: web-task}", 1)
	writeAtomic(t, web, renamed)
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		o := getObjects(t, d, "tasks")
		_, oldThere := o["web"]
		n := o["web-task"]
		return !oldThere && n.ready() && n.task().State == "running", fmt.Sprintf("%+v", o)
	})
	if got := runtimeTasks(t, d)["web"]; got.Pid != first.task().Pid {
		t.Errorf("renaming the Task object restarted its container: pid %d -> %d", first.task().Pid, got.Pid)
	}
}

// TestDeclarative_SourcesRevision: `berth get sources` says which set of
// files (and which git commit) is in force.
func TestDeclarative_SourcesRevision(t *testing.T) {
	d := startDecl(t, "")
	revision := func() string {
		var srcs []struct {
			Name, Revision string
		}
		out := d.MustCLI(t, "get", "sources", "-o", "json")
		if err := json.Unmarshal([]byte(out), &srcs); err != nil {
			t.Fatalf("get sources -o json: %v\n%s", err, out)
		}
		for _, s := range srcs {
			if s.Name == d.Manifests {
				return s.Revision
			}
		}
		return ""
	}
	var first string
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		first = revision()
		return strings.HasPrefix(first, "sha256:"), "revision of the directory: " + first
	})
	os.MkdirAll(filepath.Join(d.Manifests, ".git"), 0o755)
	commit := "0123456789abcdef0123456789abcdef01234567"
	os.WriteFile(filepath.Join(d.Manifests, ".git", "HEAD"), []byte(commit+"\n"), 0o644)
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	harness.Eventually(t, 10*time.Second, func() (bool, string) {
		r := revision()
		return r != first && strings.Contains(r, "git:"+commit), "revision after a new file in a git checkout: " + r
	})
}

// TestDeclarative_Reboot: after a power cut the state directory (a tmpfs)
// is empty, shims and containers are gone and there is no network; the
// tasks whose desired state is Running start again from the local image.
func TestDeclarative_Reboot(t *testing.T) {
	d := startDecl(t, "")
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	waitImage(t, d)
	writeAtomic(t, filepath.Join(d.Manifests, "web.yaml"), taskManifest("web", "hello", "Always"))
	first := waitTask(t, d, "web", 0)

	// The power cut: berthd, its shims and their containers die at once,
	// and /run is empty when the machine is back.
	d.Kill9()
	shimPids, _ := filepath.Glob(filepath.Join(d.State, "*", "*", "shim.pid"))
	for _, p := range shimPids {
		if b, err := os.ReadFile(p); err == nil {
			var pid int
			fmt.Sscan(string(b), &pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	syscall.Kill(first.task().Pid, syscall.SIGKILL)
	for _, m := range harness.MountsUnder(d.State) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	entries, _ := os.ReadDir(d.State)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(d.State, e.Name()))
	}

	d.Restart()
	again := waitTask(t, d, "web", first.task().Pid)
	if again.task().Pid == first.task().Pid || again.task().State != "running" {
		t.Fatalf("after the reboot: %+v", again.task())
	}
	if d.MustCLI(t, "image", "ls") == "" {
		t.Error("the image record is gone after the reboot")
	}
}

// A Container naming an Image nobody declared is Degraded with reason
// ImageNotDeclared after a short grace (not Progressing forever), and is
// Ready once the Image is declared.
func TestDeclarative_ImageNotDeclared(t *testing.T) {
	d := startDecl(t, "")
	writeAtomic(t, filepath.Join(d.Manifests, "web.yaml"), taskManifest("web", "hello", "Always"))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		c := getObjects(t, d, "containers")["web"]
		deg, _ := c.Status.Condition(spec.ConditionDegraded)
		return deg.Status == spec.ConditionTrue && deg.Reason == "ImageNotDeclared" &&
				strings.Contains(deg.Message, "Image default/busybox is not declared"),
			fmt.Sprintf("container web: %+v", c.Status.Conditions)
	})
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		c := getObjects(t, d, "containers")["web"]
		deg, _ := c.Status.Condition(spec.ConditionDegraded)
		return c.ready() && deg.Status != spec.ConditionTrue, fmt.Sprintf("container web: %+v", c.Status.Conditions)
	})
	waitTask(t, d, "web", 0)
}
