package test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// TestDeclarative_ConfiguredDefaultsReachManifests: berthd's configured
// default snapshotter and runtime (neither the built-in overlayfs nor
// runc's name) are what a manifest naming none gets, resolved once for
// the Image and the Container record alike, and stable across a restart
// (issue 10: one default per setting).
func TestDeclarative_ConfiguredDefaultsReachManifests(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	cfg := declConfig + "snapshotter: native\nruntime:\n  default: edge-runc\n  runtimes: {edge-runc: runc}\n"
	d := harness.StartDaemon(t, harness.DaemonOptions{Config: cfg, LogLevel: "info"})
	writeAtomic(t, filepath.Join(d.Manifests, "busybox.yaml"), imageManifest(t))
	writeAtomic(t, filepath.Join(d.Manifests, "app.yaml"), taskManifest("nd-app", "hi", "Always"))
	waitTask(t, d, "nd-app", 0)

	img := getObjects(t, d, "images")["busybox"]
	if u := img.Status.ImageStatus; u == nil || u.Unpacked == nil || u.Unpacked.Snapshotter != "native" {
		t.Errorf("Image status %+v: want unpacked on the configured native snapshotter", img.Status.ImageStatus)
	}
	var ctrs []struct {
		ID, Snapshotter, Runtime string
	}
	out := d.MustCLI(t, "container", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &ctrs); err != nil {
		t.Fatalf("container ls: %v\n%s", err, out)
	}
	found := false
	for _, c := range ctrs {
		if c.ID == "nd-app" {
			found = true
			if c.Snapshotter != "native" || c.Runtime != "edge-runc" {
				t.Errorf("container nd-app: snapshotter %q runtime %q, want native and edge-runc (the configured defaults)", c.Snapshotter, c.Runtime)
			}
		}
	}
	if !found {
		t.Fatalf("container nd-app not listed:\n%s", out)
	}
	// The defaults are part of the resolved spec, so a restart (which
	// resolves them again) recreates nothing.
	pid := tasks(t, d)["nd-app"].Pid
	d.Restart()
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		got := getObjects(t, d, "tasks")["nd-app"]
		return got.ready() && got.task().Pid == pid, fmt.Sprintf("after restart: %+v (want pid %d kept)", got.task(), pid)
	})
}
