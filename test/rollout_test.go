package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrlayout "github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/spec"
	"berth.dev/berth/test/harness"
)

// The rollout end-to-end tests: berth apply --atomic, rollout history and
// undo, and a kill -9 in the middle of a rollout.

// loopCommand runs until SIGTERM, printing its greeting.
const loopCommand = `trap "exit 0" TERM; echo "greeting=$GREETING"; while true; do sleep 0.1; done`

// rolloutSet is an Image, a Container and its Task, all named name.
func rolloutSet(name, ref, greeting, command string) string {
	return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: %[1]s}
spec: {ref: %[2]q}
---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: %[1]s}
spec:
  image: %[1]s
  command: [sh, -c, %[4]q]
  env: [{name: GREETING, value: %[3]s}]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, restartPolicy: Always, stopTimeout: 2s}
`, name, ref, greeting, command)
}

// revisionJSON is what `berth rollout history -o json` prints of one.
type revisionJSON struct {
	Set     string `json:"set"`
	Number  int64  `json:"number"`
	Hash    string `json:"hash"`
	Source  string `json:"source"`
	Commit  string `json:"commit"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
	Objects int32  `json:"objects"`
	Current bool   `json:"current"`
}

func rolloutHistory(t *testing.T, d *harness.Daemon, set string) map[int64]revisionJSON {
	t.Helper()
	var revs []revisionJSON
	out := d.MustCLI(t, "rollout", "history", "--applyset", set, "-o", "json")
	if err := json.Unmarshal([]byte(out), &revs); err != nil {
		t.Fatalf("rollout history: %v\n%s", err, out)
	}
	m := map[int64]revisionJSON{}
	for _, r := range revs {
		m[r.Number] = r
	}
	return m
}

// containerDigest is the image digest the Container object's container
// was made from, as its status records it.
func containerDigest(t *testing.T, d *harness.Daemon, name string) string {
	t.Helper()
	c := getObjects(t, d, "containers")[name]
	if c.Status.ContainerStatus == nil {
		return ""
	}
	return c.Status.ContainerStatus.ImageDigest
}

// waitRunningOn waits until Task name runs, Ready, in a container made from
// digest, and prints want (its greeting) in its log.
func waitRunningOn(t *testing.T, d *harness.Daemon, name, digest, greeting string) declObject {
	t.Helper()
	var task declObject
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		got := containerDigest(t, d, name)
		if got != digest {
			return false, fmt.Sprintf("container %s made from %s, want %s", name, got, digest)
		}
		task = getObjects(t, d, "tasks")[name]
		if ts := task.task(); !task.ready() || ts.State != "running" {
			return false, fmt.Sprintf("task %s: %+v %+v", name, ts, task.Status.Conditions)
		}
		logs := d.CLI("logs", name)
		return strings.Contains(logs.Stdout, "greeting="+greeting), "logs of " + name + ": " + logs.Stdout
	})
	return task
}

// gitCommitAll makes dir a git checkout with everything committed and
// returns the commit (the test is skipped without git).
func gitCommitAll(t *testing.T, dir string) string {
	t.Helper()
	testutil.RequireBinary(t, "git")
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "v1"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func layoutDigest(t *testing.T, image string) string {
	t.Helper()
	return harness.LayoutDigest(t, filepath.Join(testutil.TestImages(t, image), image), "")
}

func TestRollout_AtomicRollbackHistoryUndo(t *testing.T) {
	d := startDecl(t, "")
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox", "layered")
	busybox, layered := layoutDigest(t, "busybox"), layoutDigest(t, "layered")
	app := t.TempDir()
	file := filepath.Join(app, "app.yaml")
	write := func(data string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const name = "rtweb"
	apply := func(timeout string) harness.Result {
		return d.CLI("apply", "-f", app, "--atomic", "--applyset", "rt", "--timeout", timeout)
	}

	// Revision 1, from a git checkout: history records its commit.
	write(rolloutSet(name, refs["busybox"], "v1", loopCommand))
	commit := gitCommitAll(t, app)
	if r := apply("30s"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "revision 1 of rt ready") {
		t.Fatalf("first atomic apply: %s", r)
	}
	first := waitRunningOn(t, d, name, busybox, "v1")

	// Revision 2: a new image and a command that exits. It fails, and
	// within the timeout the node runs revision 1 again: its image, its
	// command, a task that runs.
	write(rolloutSet(name, refs["layered"], "v2", "echo greeting=v2; exit 3"))
	start := time.Now()
	r := apply("20s")
	took := time.Since(start)
	t.Logf("failed rollout (%s): %s", took.Round(time.Millisecond), r.Stderr)
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "revision 2 of rt failed: Task default/"+name) ||
		!strings.Contains(r.Stderr, "rolled back to revision 1: ready again") {
		t.Fatalf("atomic apply of a failing revision: want exit 2 naming the Task and the rollback: %s", r)
	}
	if took > 40*time.Second {
		t.Errorf("the failed rollout and its rollback took %s, more than twice the timeout", took)
	}
	back := waitRunningOn(t, d, name, busybox, "v1")
	if back.task().Pid == first.task().Pid {
		t.Logf("the task was not restarted (pid %d): the new revision never reached it", back.task().Pid)
	}
	hist := rolloutHistory(t, d, "rt")
	if h := hist[1]; h.State != "Ready" || !h.Current || h.Source != app || h.Objects != 3 || !strings.HasPrefix(h.Hash, "sha256:") || h.Commit != commit {
		t.Errorf("revision 1 in history: %+v", h)
	}
	if h := hist[2]; h.State != "Failed" || h.Current || !strings.Contains(h.Reason, "Task default/"+name) || !strings.Contains(h.Reason, "rolled back to revision 1") {
		t.Errorf("revision 2 in history: %+v", h)
	}

	// Revision 3: the new image with a command that works.
	write(rolloutSet(name, refs["layered"], "v3", loopCommand))
	if r := apply("30s"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "revision 3 of rt ready") {
		t.Fatalf("atomic apply of a good revision: %s", r)
	}
	waitRunningOn(t, d, name, layered, "v3")
	// The same set again is no new revision.
	if r := apply("30s"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "revision 3 of rt unchanged") {
		t.Errorf("atomic apply of the current revision: %s", r)
	}

	// undo: back to revision 1 (the Ready one before 3), as revision 4.
	r = d.CLI("rollout", "undo", "--applyset", "rt", "--timeout", "30s")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "revision 4 of rt ready") {
		t.Fatalf("rollout undo: %s", r)
	}
	waitRunningOn(t, d, name, busybox, "v1")
	// undo --to-revision 3.
	r = d.CLI("rollout", "undo", "--applyset", "rt", "--to-revision", "3", "--timeout", "30s")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "revision 5 of rt ready") {
		t.Fatalf("rollout undo --to-revision 3: %s", r)
	}
	waitRunningOn(t, d, name, layered, "v3")
	hist = rolloutHistory(t, d, "rt")
	if h := hist[5]; !h.Current || !strings.Contains(h.Source, "undo to revision 3") {
		t.Errorf("revision 5 in history: %+v", h)
	}
	table := d.MustCLI(t, "rollout", "history", "--applyset", "rt")
	t.Logf("rollout history:\n%s", table)
	for _, want := range []string{"SET", "REVISION", "TOOK", "COMMIT", "5*", "Failed", commit[:12]} {
		if !strings.Contains(table, want) {
			t.Errorf("rollout history table lacks %q:\n%s", want, table)
		}
	}
	if r := d.CLI("rollout", "undo", "--applyset", "rt", "--to-revision", "42"); r.ExitCode != 2 || !strings.Contains(r.Stderr, "revision 42") {
		t.Errorf("undo to a revision that does not exist: %s", r)
	}
	// The Image owns the record the rollout fetched for it: deleting the set
	// removes it, as if the Image had pulled it itself.
	d.MustCLI(t, "delete", "-f", file)
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		out := d.MustCLI(t, "image", "ls")
		return !strings.Contains(out, "library/layered"), "image ls after the delete:\n" + out
	})
	for series, want := range map[string]string{
		`berth_rollouts_total{result="ready"}`:      "4", // revisions 1, 3, 4, 5
		`berth_rollouts_total{result="rolledback"}`: "1",
		`berth_rollback_duration_seconds_count`:     "1",
	} {
		if got := metricValue(t, d, series); got != want {
			t.Errorf("%s: got %q, want %s", series, got, want)
		}
	}
}

// TestRollout_PrePullDeadRegistry: a revision whose image cannot be fetched
// changes nothing: the old task is never stopped.
func TestRollout_PrePullDeadRegistry(t *testing.T) {
	d := startDecl(t, "")
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox")
	app := t.TempDir()
	file := filepath.Join(app, "app.yaml")
	const name = "rtpull"
	if err := os.WriteFile(file, []byte(rolloutSet(name, refs["busybox"], "v1", loopCommand)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.MustCLI(t, "apply", "-f", file, "--atomic", "--applyset", "rtpull", "--timeout", "30s")
	before := waitRunningOn(t, d, name, layoutDigest(t, "busybox"), "v1")
	reg.Stop() // the network is gone
	missing := strings.Replace(refs["busybox"], "library/busybox", "library/gone", 1)
	if err := os.WriteFile(file, []byte(rolloutSet(name, missing, "v2", loopCommand)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := d.CLI("apply", "-f", file, "--atomic", "--applyset", "rtpull", "--timeout", "30s")
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "Image default/"+name) || !strings.Contains(r.Stderr, "fetch failed") {
		t.Fatalf("atomic apply with an image that cannot be fetched: %s", r)
	}
	after := getObjects(t, d, "tasks")[name]
	if after.task().Pid != before.task().Pid || !after.ready() {
		t.Errorf("the old task was disturbed: pid %d → %d, %+v", before.task().Pid, after.task().Pid, after.Status.Conditions)
	}
	if h := rolloutHistory(t, d, "rtpull")[2]; h.State != "Failed" || !strings.Contains(h.Reason, "nothing was changed") {
		t.Errorf("revision 2 in history: %+v", h)
	}
}

// TestRollout_KillDuringRollout kills berthd while a revision is pending:
// the restarted berthd rolls it back before its controllers run, so the
// node converges to the previous revision, and history says why.
func TestRollout_KillDuringRollout(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: declConfig, LogLevel: "info", AllowUncleanStop: true})
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox", "layered")
	busybox := layoutDigest(t, "busybox")
	app := t.TempDir()
	file := filepath.Join(app, "app.yaml")
	const name = "rtkill"
	if err := os.WriteFile(file, []byte(rolloutSet(name, refs["busybox"], "v1", loopCommand)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.MustCLI(t, "apply", "-f", file, "--atomic", "--applyset", "rtkill", "--timeout", "30s")
	waitRunningOn(t, d, name, busybox, "v1")
	// A revision that is Ready but must stay so for minutes: the kill lands
	// while it is pending, with its new container running.
	if err := os.WriteFile(file, []byte(rolloutSet(name, refs["layered"], "v2", loopCommand)), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan harness.Result, 1)
	go func() {
		done <- d.CLI("apply", "-f", file, "--atomic", "--applyset", "rtkill", "--timeout", "5m", "--min-ready", "4m")
	}()
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		h := rolloutHistory(t, d, "rtkill")[2]
		return h.State == "Pending" && containerDigest(t, d, name) != busybox,
			fmt.Sprintf("revision 2: %+v, container on %s", h, containerDigest(t, d, name))
	})
	d.Kill9()
	<-done
	d.Restart()
	waitRunningOn(t, d, name, busybox, "v1")
	hist := rolloutHistory(t, d, "rtkill")
	if h := hist[2]; h.State != "Failed" || !strings.Contains(h.Reason, "interrupted") {
		t.Errorf("revision 2 after the kill: %+v", h)
	}
	if h := hist[1]; !h.Current {
		t.Errorf("revision 1 is not current after the kill: %+v", h)
	}
}

// pushVariant pushes the busybox test image with files added on top to
// repoTag in the registry, and returns the pushed digest: a new digest
// behind a tag, as a registry sees one.
func pushVariant(t *testing.T, addr, repoTag string, files map[string]string) string {
	t.Helper()
	p, err := ggcrlayout.FromPath(filepath.Join(testutil.TestImages(t, "busybox"), "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		t.Fatalf("busybox layout: %v", err)
	}
	img, err := p.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	fm := map[string][]byte{}
	for k, v := range files {
		fm[k] = []byte(v)
	}
	layer, err := crane.Layer(fm)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(addr+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrremote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// updateCommand fails at once in an image that has /broken, else runs,
// printing the image's /version.
const updateCommand = `if [ -e /broken ]; then echo broken; exit 1; fi; trap "exit 0" TERM; echo "greeting=$(cat /version)"; while true; do sleep 0.1; done`

func imageUpdate(t *testing.T, d *harness.Daemon, name string) spec.ImageUpdateStatus {
	t.Helper()
	img := getObjects(t, d, "images")[name]
	if img.Status.ImageStatus == nil || img.Status.ImageStatus.Update == nil {
		return spec.ImageUpdateStatus{}
	}
	return *img.Status.ImageStatus.Update
}

func metricValue(t *testing.T, d *harness.Daemon, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + d.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestRollout_ImageAutoUpdate: an Image with updatePolicy follows its tag.
// A new digest is pulled and both Containers move to it; a broken digest
// is rolled back, and stays rejected while the tag names it.
func TestRollout_ImageAutoUpdate(t *testing.T) {
	d := startDecl(t, "")
	reg := harness.StartRegistry(t)
	const repoTag = "library/autoupd:latest"
	d1 := pushVariant(t, reg.Addr, repoTag, map[string]string{"version": "1"})
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: berth.dev/v1
kind: Image
metadata: {name: autoupd}
spec:
  ref: %s/%s
  updatePolicy: {mode: Digest, interval: 1s, timeout: 20s}
`, reg.Addr, repoTag)
	for _, n := range []string{"auone", "autwo"} {
		fmt.Fprintf(&b, `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: %[1]s}
spec:
  image: autoupd
  command: [sh, -c, %[2]q]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, restartPolicy: Always, stopTimeout: 2s}
`, n, updateCommand)
	}
	writeAtomic(t, filepath.Join(d.Manifests, "autoupd.yaml"), b.String())
	for _, n := range []string{"auone", "autwo"} {
		waitRunningOn(t, d, n, d1, "1")
	}

	// A new digest: both Containers move to it.
	d2 := pushVariant(t, reg.Addr, repoTag, map[string]string{"version": "2"})
	for _, n := range []string{"auone", "autwo"} {
		waitRunningOn(t, d, n, d2, "2")
	}
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		u := imageUpdate(t, d, "autoupd")
		return u.Updates == 1 && u.Target == "", fmt.Sprintf("update status: %+v", u)
	})
	// One at a time: the second container was made only after the first
	// had been Ready on the new digest for a while.
	ts := getObjects(t, d, "tasks")
	if a, b := ts["auone"].task().ContainerCreatedAt, ts["autwo"].task().ContainerCreatedAt; b.Sub(a) < 900*time.Millisecond {
		t.Errorf("containers recreated %s apart (auone %s, autwo %s): not one at a time", b.Sub(a), a, b)
	}

	// A broken digest: the first Container moved fails, the update rolls
	// back to d2, and d3 is not tried again while the tag names it.
	d3 := pushVariant(t, reg.Addr, repoTag, map[string]string{"version": "3", "broken": "yes"})
	var rolledBack spec.ImageUpdateStatus
	harness.Eventually(t, 60*time.Second, func() (bool, string) {
		rolledBack = imageUpdate(t, d, "autoupd")
		return rolledBack.Rejected == d3 && rolledBack.Rollbacks == 1 && rolledBack.Target == "", fmt.Sprintf("update status: %+v", rolledBack)
	})
	if !strings.Contains(rolledBack.RejectedReason, "Container default/au") {
		t.Errorf("rejected reason: %q", rolledBack.RejectedReason)
	}
	for _, n := range []string{"auone", "autwo"} {
		waitRunningOn(t, d, n, d2, "2")
	}
	// It stays: several checks later d3 is still rejected, nothing moved.
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		u := imageUpdate(t, d, "autoupd")
		return u.LastCheck.After(rolledBack.LastCheck.Add(2 * time.Second)), fmt.Sprintf("waiting for two more checks: %+v", u)
	})
	if u := imageUpdate(t, d, "autoupd"); u.Rejected != d3 || u.Rollbacks != 1 || u.Target != "" {
		t.Errorf("after more checks: %+v", u)
	}
	for _, n := range []string{"auone", "autwo"} {
		if got := containerDigest(t, d, n); got != d2 {
			t.Errorf("container %s on %s after the rollback, want %s", n, got, d2)
		}
	}
	if v := metricValue(t, d, `berth_image_updates_total{result="updated"}`); v != "1" {
		t.Errorf("updated metric: %q", v)
	}
	if v := metricValue(t, d, `berth_image_updates_total{result="rolledback"}`); v != "1" {
		t.Errorf("rolledback metric: %q", v)
	}
	ev := d.MustCLI(t, "describe", "image", "autoupd")
	t.Logf("describe image:\n%s", ev)
	for _, topic := range []string{"/images/autoupdate/start", "/images/autoupdate/done", "/images/autoupdate/rollback"} {
		if !strings.Contains(ev, topic) {
			t.Errorf("describe image lacks the event %s:\n%s", topic, ev)
		}
	}
}

// TestRollout_AtomicManifestDirectory: with rollout.atomicManifests the
// watched directory is rolled out as one revision: a failing set is rolled
// back, not retried after a restart until the files change, and a good one
// is rolled out.
func TestRollout_AtomicManifestDirectory(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: declConfig + "rollout: {atomicManifests: true, timeout: 20s}\n", LogLevel: "info"})
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox", "layered")
	busybox, layered := layoutDigest(t, "busybox"), layoutDigest(t, "layered")
	const name = "rtdir"
	file := filepath.Join(d.Manifests, "app.yaml")
	set := filepath.Clean(d.Manifests)

	writeAtomic(t, file, rolloutSet(name, refs["busybox"], "v1", loopCommand))
	waitRunningOn(t, d, name, busybox, "v1")
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		h := rolloutHistory(t, d, set)[1]
		return h.State == "Ready" && h.Current, fmt.Sprintf("revision 1: %+v", h)
	})

	writeAtomic(t, file, rolloutSet(name, refs["layered"], "v2", "echo greeting=v2; exit 3"))
	harness.Eventually(t, 45*time.Second, func() (bool, string) {
		h := rolloutHistory(t, d, set)[2]
		return h.State == "Failed" && strings.Contains(h.Reason, "Task default/"+name), fmt.Sprintf("revision 2: %+v", h)
	})
	waitRunningOn(t, d, name, busybox, "v1")

	// A restart reads the same failing files: revision 1 stays in force and
	// the failed set is not rolled out again.
	d.Restart()
	waitRunningOn(t, d, name, busybox, "v1")
	if h := rolloutHistory(t, d, set); len(h) != 2 || !h[1].Current {
		t.Errorf("history after a restart: %+v", h)
	}

	writeAtomic(t, file, rolloutSet(name, refs["layered"], "v3", loopCommand))
	waitRunningOn(t, d, name, layered, "v3")
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		h := rolloutHistory(t, d, set)[3]
		return h.State == "Ready" && h.Current, fmt.Sprintf("revision 3: %+v", h)
	})

	// undo goes back to revision 1 while the files still say v3, and a
	// restart keeps it so: the files are unchanged since they were rolled out.
	if r := d.CLI("rollout", "undo", "--applyset", set, "--timeout", "30s"); r.ExitCode != 0 || !strings.Contains(r.Stdout, "revision 4 of "+set+" ready") {
		t.Fatalf("rollout undo of the directory: %s", r)
	}
	waitRunningOn(t, d, name, busybox, "v1")
	d.Restart()
	waitRunningOn(t, d, name, busybox, "v1")
	if h := rolloutHistory(t, d, set); len(h) != 4 || !h[4].Current {
		t.Errorf("history after an undo and a restart: %+v", h)
	}
	// A change of the files is rolled out again.
	writeAtomic(t, file, rolloutSet(name, refs["layered"], "v5", loopCommand))
	waitRunningOn(t, d, name, layered, "v5")
}

// TestRollout_AtomicProbeNeverReady: a revision whose readiness probe never
// passes is rolled back at the timeout, naming the probe's reason.
func TestRollout_AtomicProbeNeverReady(t *testing.T) {
	d := startDecl(t, "")
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox")
	busybox := layoutDigest(t, "busybox")
	app := t.TempDir()
	file := filepath.Join(app, "app.yaml")
	const name = "rtprobe"
	write := func(data string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(rolloutSet(name, refs["busybox"], "v1", loopCommand))
	d.MustCLI(t, "apply", "-f", file, "--atomic", "--applyset", "rtprobe", "--timeout", "30s")
	waitRunningOn(t, d, name, busybox, "v1")
	withProbe := strings.Replace(rolloutSet(name, refs["busybox"], "v2", loopCommand),
		"  env: [{name: GREETING, value: v2}]\n",
		"  env: [{name: GREETING, value: v2}]\n  readinessProbe: {exec: {command: [sh, -c, 'echo not yet; exit 1']}, periodSeconds: 1, failureThreshold: 1}\n", 1)
	write(withProbe)
	start := time.Now()
	r := d.CLI("apply", "-f", file, "--atomic", "--applyset", "rtprobe", "--timeout", "6s")
	took := time.Since(start)
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "revision 2 of rtprobe failed: Task default/"+name+": not Ready after 6s") ||
		!strings.Contains(r.Stderr, "rolled back to revision 1: ready again") {
		t.Fatalf("atomic apply of a revision whose probe never passes: %s", r)
	}
	if took < 6*time.Second || took > 30*time.Second {
		t.Errorf("took %s: want the 6s timeout and a rollback", took)
	}
	waitRunningOn(t, d, name, busybox, "v1")
}

// TestRollout_AtomicDirectoryKillDuringRollout: berthd killed while a
// revision of its atomic directory is pending (a readiness probe that never
// passes, a long timeout) starts again on the previous revision and does
// not roll the interrupted set out again while the files are unchanged.
func TestRollout_AtomicDirectoryKillDuringRollout(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: declConfig + "rollout: {atomicManifests: true, timeout: 5m}\n",
		LogLevel: "info", AllowUncleanStop: true})
	reg := harness.StartRegistry(t)
	refs := harness.PushTestImages(t, reg.Addr, "busybox", "layered")
	busybox, layered := layoutDigest(t, "busybox"), layoutDigest(t, "layered")
	const name = "rtdirkill"
	file := filepath.Join(d.Manifests, "app.yaml")
	set := filepath.Clean(d.Manifests)
	writeAtomic(t, file, rolloutSet(name, refs["busybox"], "v1", loopCommand))
	waitRunningOn(t, d, name, busybox, "v1")
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		h := rolloutHistory(t, d, set)[1]
		return h.State == "Ready", fmt.Sprintf("revision 1: %+v", h)
	})
	writeAtomic(t, file, strings.Replace(rolloutSet(name, refs["layered"], "v2", loopCommand),
		"  env: [{name: GREETING, value: v2}]\n",
		"  env: [{name: GREETING, value: v2}]\n  readinessProbe: {exec: {command: [\"false\"]}, periodSeconds: 1}\n", 1))
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		h := rolloutHistory(t, d, set)[2]
		return h.State == "Pending" && containerDigest(t, d, name) == layered,
			fmt.Sprintf("revision 2: %+v, container on %s", h, containerDigest(t, d, name))
	})
	d.Kill9()
	d.Restart()
	waitRunningOn(t, d, name, busybox, "v1")
	hist := rolloutHistory(t, d, set)
	if h := hist[2]; h.State != "Failed" || !strings.Contains(h.Reason, "interrupted") {
		t.Errorf("revision 2 after the kill: %+v", h)
	}
	if len(hist) != 2 || !hist[1].Current {
		t.Errorf("history after the kill: %+v (want revision 1 current, nothing rolled out again)", hist)
	}
}

// TestRollout_ImageAutoUpdateKillMidUpdate: the update's state is in the
// Image's status, so a berthd killed while it moves Containers resumes it:
// the digest whose readiness probe never passes is rolled back once its
// timeout (counted from before the kill) passes, and rejected.
func TestRollout_ImageAutoUpdateKillMidUpdate(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	d := harness.StartDaemon(t, harness.DaemonOptions{Manifests: "", Config: declConfig, LogLevel: "info", AllowUncleanStop: true})
	reg := harness.StartRegistry(t)
	const repoTag = "library/autokill:latest"
	d1 := pushVariant(t, reg.Addr, repoTag, map[string]string{"version": "1"})
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: berth.dev/v1
kind: Image
metadata: {name: autokill}
spec:
  ref: %s/%s
  updatePolicy: {mode: Digest, interval: 1s, timeout: 15s}
`, reg.Addr, repoTag)
	for _, n := range []string{"akone", "aktwo"} {
		fmt.Fprintf(&b, `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: %[1]s}
spec:
  image: autokill
  command: [sh, -c, 'trap "exit 0" TERM; echo "greeting=$(cat /version)"; while true; do sleep 0.1; done']
  readinessProbe: {exec: {command: [sh, -c, 'test ! -e /unready']}, periodSeconds: 1}
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, restartPolicy: Always, stopTimeout: 2s}
`, n)
	}
	writeAtomic(t, filepath.Join(d.Manifests, "autokill.yaml"), b.String())
	for _, n := range []string{"akone", "aktwo"} {
		waitRunningOn(t, d, n, d1, "1")
	}
	d2 := pushVariant(t, reg.Addr, repoTag, map[string]string{"version": "2", "unready": "yes"})
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		u := imageUpdate(t, d, "autokill")
		return u.Target == d2 && len(u.Moved) == 1 && containerDigest(t, d, u.Moved[0]) == d2, fmt.Sprintf("update: %+v", u)
	})
	moving := imageUpdate(t, d, "autokill")
	d.Kill9()
	d.Restart()
	var u spec.ImageUpdateStatus
	harness.Eventually(t, 45*time.Second, func() (bool, string) {
		u = imageUpdate(t, d, "autokill")
		return u.Rejected == d2 && u.Rollbacks == 1 && u.Target == "", fmt.Sprintf("update after the restart: %+v", u)
	})
	if !strings.Contains(u.RejectedReason, "Container default/"+moving.Moved[0]) || !strings.Contains(u.RejectedReason, "not Ready after 15s") {
		t.Errorf("rejected reason: %q", u.RejectedReason)
	}
	for _, n := range []string{"akone", "aktwo"} {
		waitRunningOn(t, d, n, d1, "1")
	}
}
