package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/spec"
	"berth.dev/berth/test/harness"
)

// The node policy end to end: what a manifest or `berth run` may ask of
// the host (docs/security.md, "Node policy").

// bindManifest is a Container binding source on /host, and its Task.
func bindManifest(name, source string) string {
	return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Container
metadata: {name: %[1]s}
spec:
  image: busybox
  command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 0.1; done']
  mounts: [{source: %[2]q, target: /host}]
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, stopTimeout: 2s}
`, name, source)
}

// degraded waits until the Container is Degraded with reason and returns
// the condition's message.
func degraded(t *testing.T, d *harness.Daemon, name, reason string) string {
	t.Helper()
	var msg string
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		c := getObjects(t, d, "containers")[name]
		cond, ok := c.Status.Condition(spec.ConditionDegraded)
		msg = cond.Message
		return ok && cond.Status == spec.ConditionTrue && cond.Reason == reason, fmt.Sprintf("container %s: %+v", name, c.Status.Conditions)
	})
	return msg
}

// TestPolicy_ManifestBindOfRoot: a manifest binding the host's / is
// Degraded with the policy key named and never created, a running
// Container edited to bind berthd's state directory keeps running the
// previous spec, and the control task is not disturbed.
func TestPolicy_ManifestBindOfRoot(t *testing.T) {
	d := startDecl(t, "")
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	writeAtomic(t, filepath.Join(d.Manifests, "ctl.yaml"), taskManifest("pol-ctl", "hello", "Always"))
	ctl := waitTask(t, d, "pol-ctl", 0).task().Pid

	writeAtomic(t, filepath.Join(d.Manifests, "evil.yaml"), bindManifest("pol-evil", "/"))
	msg := degraded(t, d, "pol-evil", "PolicyViolation")
	if !strings.Contains(msg, "policy.default.protectedPaths") || !strings.Contains(msg, `bind source "/"`) {
		t.Errorf("Degraded message %q: want the policy key policy.default.protectedPaths and the source", msg)
	}
	if out := d.MustCLI(t, "container", "ls"); strings.Contains(out, "pol-evil") {
		t.Errorf("the refused container was created:\n%s", out)
	}
	if desc := d.MustCLI(t, "describe", "container", "pol-evil"); !strings.Contains(desc, "policy.default.protectedPaths") {
		t.Errorf("describe does not name the policy key:\n%s", desc)
	}

	// An edit of a running Container to a refused spec keeps the running one.
	writeAtomic(t, filepath.Join(d.Manifests, "ctl2.yaml"), bindManifest("pol-edit", t.TempDir()))
	edit := waitTask(t, d, "pol-edit", 0).task().Pid
	writeAtomic(t, filepath.Join(d.Manifests, "ctl2.yaml"), bindManifest("pol-edit", d.State))
	msg = degraded(t, d, "pol-edit", "PolicyViolation")
	if !strings.Contains(msg, "policy.default.protectedPaths") || !strings.Contains(msg, "previous spec is kept") {
		t.Errorf("Degraded message %q: want the key and that the previous spec is kept", msg)
	}
	if got := tasks(t, d)["pol-edit"]; got.Pid != edit || got.Status != "running" {
		t.Errorf("edited container's task: %+v, want still running pid %d", got, edit)
	}

	if got := waitTask(t, d, "pol-ctl", 0).task().Pid; got != ctl {
		t.Errorf("control task pid %d, want %d (undisturbed)", got, ctl)
	}
	if r := d.CLI("version"); r.ExitCode != 0 {
		t.Errorf("berthd not answering: %s", r)
	}
}

// TestPolicy_RunMount: `berth run --mount` of berthd's state directory,
// root or socket fails naming the policy key; an ordinary directory works.
func TestPolicy_RunMount(t *testing.T) {
	d := runDaemon(t)
	ok := t.TempDir()
	for _, tc := range []struct {
		name, source, want string
	}{
		{"state dir", d.State, "policy.default.protectedPaths"},
		{"root dir", d.Root, "policy.default.protectedPaths"},
		{"inside root", filepath.Join(d.Root, "content"), "policy.default.protectedPaths"},
		{"socket", d.Socket, "policy.default.protectedPaths"},
		{"host /", "/", "policy.default.protectedPaths"},
		{"manifest dir", d.Manifests, "policy.default.protectedPaths"},
		{"ordinary dir", ok, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.CLI("run", "--rm", "--mount", "type=bind,source="+tc.source+",target=/mnt", "busybox:latest", "pol-run", "true")
			if tc.want == "" {
				if r.ExitCode != 0 {
					t.Fatalf("bind of %s: %s, want exit 0", tc.source, r)
				}
				return
			}
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, tc.want) || !strings.Contains(r.Stderr, "node policy") {
				t.Fatalf("bind of %s: %s, want refused naming %s", tc.source, r, tc.want)
			}
		})
	}
	if out := d.MustCLI(t, "container", "ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("refused runs left containers: %s", out)
	}
}

// TestPolicy_Configured: a config loosening the protected paths allows a
// bind of the state directory; one tightening a namespace refuses root,
// host network, unlimited memory and binds outside its prefixes, each by
// its key, and allows what is within them.
func TestPolicy_Configured(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	images := testutil.TestImages(t, "busybox")
	allowed := t.TempDir()
	if err := os.WriteFile(filepath.Join(allowed, "marker"), []byte("ok\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`policy:
  default:
    protectedPaths: []
  namespaces:
    locked:
      allowedBindPrefixes: [%q]
      allowHostNetwork: false
      allowRootUser: false
      maxMemory: 64Mi
`, allowed)
	d := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "info", Config: cfg})
	d.MustCLI(t, "image", "import", filepath.Join(images, "busybox"))
	d.MustCLI(t, "-n", "locked", "image", "import", filepath.Join(images, "busybox"))

	r := d.CLI("run", "--rm", "--mount", "type=bind,source="+d.State+",target=/s,ro", "busybox:latest", "pol-loose", "ls", "/s")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "berth.sock") {
		t.Fatalf("bind of the state dir with protectedPaths: []: %s, want allowed (listing berth.sock)", r)
	}

	nobody := []string{"--user", "65534", "--memory", "32Mi"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"root user", []string{"--memory", "32Mi"}, "policy.namespaces.locked.allowRootUser"},
		{"host network", append([]string{"--net-host"}, nobody...), "policy.namespaces.locked.allowHostNetwork"},
		{"no memory limit", []string{"--user", "65534"}, "policy.namespaces.locked.maxMemory"},
		{"memory over", []string{"--user", "65534", "--memory", "128Mi"}, "policy.namespaces.locked.maxMemory"},
		{"bind outside", append([]string{"--mount", "type=bind,source=/etc,target=/e"}, nobody...), "policy.namespaces.locked.allowedBindPrefixes"},
		{"within", append([]string{"--mount", "type=bind,source=" + allowed + ",target=/a"}, nobody...), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"-n", "locked", "run", "--rm"}, tc.args...), "busybox:latest", "pol-locked", "sh", "-c", "id -u; cat /a/marker 2>/dev/null; true")
			r := d.CLI(args...)
			if tc.want == "" {
				if r.ExitCode != 0 || r.Stdout != "65534\nok\n" {
					t.Fatalf("%s, want exit 0 printing 65534 and the marker", r)
				}
				return
			}
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("%s, want refused naming %s", r, tc.want)
			}
		})
	}
}
