package test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// TestCLI_DeleteImageKeepsHandPulled: deleting a declared Image removes
// the image record only if the declaration made it. One the user had
// pulled (here imported) by hand under the same reference stays, and
// describe says so; one the declaration imported itself goes.
func TestCLI_DeleteImageKeepsHandPulled(t *testing.T) {
	d := startDecl(t, "")
	layout := filepath.Join(testutil.TestImages(t, "busybox"), "busybox")
	imageObj := func(name, ref string) string {
		return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: %s}
spec: {ref: %s, pullPolicy: Never, source: {layout: %s}}
`, name, ref, layout)
	}
	const mine, theirs = "example.local/owner-declared:1", "example.local/owner-by-hand:1"
	d.MustCLI(t, "image", "import", layout, "--name", theirs)
	if r := d.CLIStdin(imageObj("by-hand", theirs)+"---\n"+imageObj("declared", mine), "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		objs := getObjects(t, d, "images")
		return objs["by-hand"].ready() && objs["declared"].ready(), fmt.Sprintf("%+v", objs)
	})
	if out := d.MustCLI(t, "describe", "image", "by-hand"); !strings.Contains(out, "the image was on the node before it was declared: deleting the Image leaves it") {
		t.Errorf("describe image by-hand does not say the image is not its own:\n%s", out)
	}
	if r := d.CLI("delete", "image", "by-hand", "declared"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	harness.Eventually(t, 20*time.Second, func() (bool, string) {
		out := d.MustCLI(t, "image", "ls")
		return !strings.Contains(out, mine), "the declared image is still listed:\n" + out
	})
	if out := d.MustCLI(t, "image", "ls"); !strings.Contains(out, theirs) {
		t.Errorf("the image imported by hand went with the Image object:\n%s", out)
	}
	if r := d.CLI("get", "images"); r.Stdout != "" {
		t.Errorf("Image objects still declared\n%s", r)
	}
}
