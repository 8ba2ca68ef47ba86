// Package testutil holds the prerequisites checks shared by berth's tests.
//
// A test that needs root, a binary or the test images calls one of
// these first. On a developer machine a missing prerequisite skips the test
// with the reason; under CI (CI=true) it fails it, so CI never passes by
// skipping what it was meant to run.
package testutil

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// InCI reports whether the tests run under CI, where skips are failures.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1" || v == "yes"
}

// Missing skips t, or fails it under CI, because a prerequisite is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing under CI=true: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// RequireRoot needs uid 0.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// RequireBinary needs name on PATH and returns its path.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "needs %s on PATH (make deps installs it)", name)
	}
	return p
}

// RepoRoot is the module's top directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// TestImages returns the directory of OCI layouts built by hack/mkimage
// (make testimages), from $BERTH_TESTIMAGES or .cache/testimages, and checks
// that the named layouts exist.
func TestImages(t testing.TB, names ...string) string {
	t.Helper()
	dir := os.Getenv("BERTH_TESTIMAGES")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), ".cache", "testimages")
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n, "index.json")); err != nil {
			Missing(t, "test image %s not built in %s (run make testimages as root)", n, dir)
		}
	}
	return dir
}

// Bin returns the path of a berth binary built by make build, from
// $BERTH_BIN or bin/.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("BERTH_BIN")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "%s not built (run make build)", p)
	}
	return p
}

// ExtractSingleLayer untars the one layer of the OCI layout at layout into
// dst with plain tar, for tests that need a rootfs but are not about layer
// apply (that is the snapshotter's business).
func ExtractSingleLayer(layout, dst string) error {
	var idx, man struct {
		Manifests []struct{ Digest string } `json:"manifests"`
		Layers    []struct{ Digest string } `json:"layers"`
	}
	blob := func(d string) string {
		return filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
	}
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) == 0 {
		return fmt.Errorf("index of %s: %v", layout, err)
	}
	if b, err = os.ReadFile(blob(idx.Manifests[0].Digest)); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &man); err != nil || len(man.Layers) != 1 {
		return fmt.Errorf("manifest of %s: %v (%d layers, want 1)", layout, err, len(man.Layers))
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("tar", "-xzf", blob(man.Layers[0].Digest), "-C", dst).CombinedOutput(); err != nil {
		return fmt.Errorf("extract %s: %v: %s", layout, err, out)
	}
	return nil
}
