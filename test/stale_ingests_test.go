package test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// plantIngest leaves what a pull cut short leaves: half a blob in a
// resumable ingest, last written age ago.
func plantIngest(t *testing.T, d *harness.Daemon, ref string, age time.Duration) string {
	t.Helper()
	sum := sha256.Sum256([]byte(ref))
	dir := filepath.Join(d.Root, "content", "ingest", hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"data": strings.Repeat("x", 1000), "total": "2000",
		"startedat": time.Now().Add(-age).UTC().Format(time.RFC3339Nano), "ref": ref}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(dir, "data"), old, old); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestContentPrune_StaleIngests(t *testing.T) {
	testutil.RequireRoot(t)
	d := harness.StartDaemon(t, harness.DaemonOptions{})
	d.MustCLI(t, "lease", "create", "--id", "hold")
	d.MustCLI(t, "lease", "add", "hold", "ingests", "held")
	// An hour is younger than content.staleIngestAge's default day: left
	// alone, berthd keeps both; a prune asked for takes the unleased one.
	old := plantIngest(t, d, "failed-pull", time.Hour)
	leased := plantIngest(t, d, "held", time.Hour)

	r := d.CLI("content", "prune")
	if r.ExitCode != 0 || !strings.Contains(r.Stdout, "ingest failed-pull\n") || strings.Contains(r.Stdout, "held") ||
		!strings.Contains(r.Stderr, "and 1 stale ingests") {
		t.Fatalf("content prune: want the failed pull's ingest removed and the leased one kept: %s", r)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale ingest %s after prune: %v, want it gone", old, err)
	}
	if _, err := os.Stat(filepath.Join(leased, "data")); err != nil {
		t.Errorf("leased ingest after prune: %v, want it kept", err)
	}
}
