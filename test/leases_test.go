package test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

func blobDigests(t *testing.T, d *harness.Daemon) []string {
	t.Helper()
	var list []struct {
		Digest string `json:"digest"`
	}
	out := d.MustCLI(t, "content", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("content ls -o json: %v\n%s", err, out)
	}
	var ds []string
	for _, b := range list {
		ds = append(ds, b.Digest)
	}
	slices.Sort(ds)
	return ds
}

func committedSnapshots(t *testing.T, d *harness.Daemon) int {
	t.Helper()
	return strings.Count(d.MustCLI(t, "snapshot", "ls"), "Committed")
}

// TestLeases_PinContentUntilDeleted: what an import made under a lease
// outlives the image's removal and a prune; ending the lease lets the next
// collection take it. Leases of other clients are untouched meanwhile.
func TestLeases_PinContentUntilDeleted(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TestImages(t, "busybox")
	d := harness.StartDaemon(t, harness.DaemonOptions{})

	if got := strings.TrimSpace(d.MustCLI(t, "lease", "create", "--id", "keep", "--label", "owner=test")); got != "keep" {
		t.Fatalf("lease create printed %q, want keep", got)
	}
	if r := d.CLI("image", "import", "--lease", "nope", filepath.Join(dir, "busybox")); r.ExitCode == 0 || !strings.Contains(r.Stderr, "nope") {
		t.Fatalf("import with an unknown lease should fail naming it: %s", r)
	}
	d.MustCLI(t, "image", "import", "--lease", "keep", filepath.Join(dir, "busybox"))
	blobs := blobDigests(t, d)
	if len(blobs) == 0 {
		t.Fatal("import stored no blobs")
	}
	res := d.MustCLI(t, "lease", "resources", "keep")
	for _, b := range blobs {
		if !strings.Contains(res, b) {
			t.Errorf("lease resources miss blob %s:\n%s", b, res)
		}
	}
	if !strings.Contains(res, "snapshots/overlayfs") {
		t.Errorf("lease resources miss the unpacked snapshot:\n%s", res)
	}
	ls := d.MustCLI(t, "lease", "ls")
	if !strings.Contains(ls, "keep") || !strings.Contains(ls, "owner=test") || strings.Contains(ls, "berthd-") {
		t.Errorf("lease ls should list keep with its label and no finished operation's lease:\n%s", ls)
	}

	d.MustCLI(t, "image", "rm", "--sync", "busybox:latest")
	d.MustCLI(t, "content", "prune")
	if got := blobDigests(t, d); !slices.Equal(got, blobs) {
		t.Fatalf("leased blobs after image rm and prune: got %v, want %v", got, blobs)
	}
	if got := committedSnapshots(t, d); got != 1 {
		t.Errorf("leased layer snapshot after prune: %d committed, want 1", got)
	}

	d.MustCLI(t, "lease", "rm", "keep")
	if ls := d.MustCLI(t, "lease", "ls"); strings.Contains(ls, "keep") {
		t.Errorf("lease still listed after rm:\n%s", ls)
	}
	d.MustCLI(t, "content", "prune")
	if got := blobDigests(t, d); len(got) != 0 {
		t.Errorf("blobs after the lease ended and a prune: %v, want none", got)
	}
	if got := committedSnapshots(t, d); got != 0 {
		t.Errorf("committed snapshots after the lease ended: %d, want 0", got)
	}
}

// TestLeases_ExpiredCollectedAfterRestart: a lease whose client died (here
// berthd too, with kill -9) is collected when it has expired, at the next
// start, before berthd serves.
func TestLeases_ExpiredCollectedAfterRestart(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TestImages(t, "busybox")
	d := harness.StartDaemon(t, harness.DaemonOptions{})

	d.MustCLI(t, "lease", "create", "--id", "short", "--expires", "3s")
	d.MustCLI(t, "lease", "create", "--id", "forever")
	d.MustCLI(t, "image", "import", "--lease", "short", filepath.Join(dir, "busybox"))
	d.MustCLI(t, "image", "rm", "--sync", "busybox:latest")
	if len(blobDigests(t, d)) == 0 {
		t.Fatal("the lease did not keep the blobs")
	}
	d.Kill9()
	// The lease must expire while berthd is down: wait out its clock.
	time.Sleep(3 * time.Second)
	d.Restart()
	if got := blobDigests(t, d); len(got) != 0 {
		t.Errorf("blobs of the expired lease after restart: %v, want none", got)
	}
	ls := d.MustCLI(t, "lease", "ls")
	if strings.Contains(ls, "short") || !strings.Contains(ls, "forever") {
		t.Errorf("after restart the expired lease should be gone and the other kept:\n%s", ls)
	}
}
