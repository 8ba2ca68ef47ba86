package test

import (
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// An imperative command on a namespace that does not exist yet creates
// it, as containerd does (and berth run pulls the image the namespace
// lacks, as nerdctl run does); namespace rm still refuses a non-empty one.
func TestNamespaces_FreshOnFirstUse(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	reg := harness.StartRegistry(t)
	ref := harness.PushTestImages(t, reg.Addr, "busybox")["busybox"]
	d := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "info"})
	const ns = "fresh-probes"
	if r := d.MustCLI(t, "namespace", "ls"); strings.Contains(r, ns) {
		t.Fatalf("namespace %s exists before the test:\n%s", ns, r)
	}
	if r := d.CLI("-n", ns, "run", "--pull", "never", "--rm", ref, "fresh-x", "true"); r.ExitCode != 2 || !strings.Contains(r.Stderr, "image") {
		t.Errorf("run --pull never of an image the namespace lacks: want exit 2 naming the image, got %s", r)
	}
	if r := d.CLI("-n", ns, "run", "--rm", ref, "fresh-x", "true"); r.ExitCode != 0 {
		t.Fatalf("berth -n %s run --rm: %s", ns, r)
	}
	if r := d.MustCLI(t, "namespace", "ls"); !strings.Contains(r, ns) {
		t.Errorf("namespace %s not listed after the run:\n%s", ns, r)
	}
	// It holds the pulled image: not empty, so rm refuses it.
	if r := d.CLI("namespace", "rm", ns); r.ExitCode == 0 {
		t.Errorf("namespace rm of a non-empty namespace succeeded: %s", r)
	}
	d.MustCLI(t, "-n", ns, "image", "rm", ref)
	d.MustCLI(t, "namespace", "rm", ns)
}
