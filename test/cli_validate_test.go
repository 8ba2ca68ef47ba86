package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// TestCLI_Validate_Offline checks berth validate on broken and good
// manifests with no berthd: --address names a socket that does not
// exist, so a command that dialled would fail with exit 2.
func TestCLI_Validate_Offline(t *testing.T) {
	berth := testutil.Bin(t, "berth")
	noDaemon := []string{"--address", "/nonexistent/berth.sock"}
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const good = "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: ok}\nspec: {image: busybox}\n"
	write("a-good.yaml", good)
	write("b-quantity.yaml", good+"---\napiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: busybox\n  resources: {memory: 64MB}\n")
	write("c-unknown.yaml", "apiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: web}\nspec:\n  image: busybox\n  comand: [true]\n")
	write("d-kind.yaml", "apiVersion: berth.dev/v1\nkind: Contianer\nmetadata: {name: web}\nspec: {image: busybox}\n")
	write("notes.txt", "not a manifest: the directory rule skips it\n")

	r := runBin(t, -1, berth, append(noDaemon, "validate", "-f", dir)...)
	if r.code != 1 {
		t.Fatalf("validate broken dir: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	wants := []*regexp.Regexp{
		regexp.MustCompile(`^.*/b-quantity\.yaml: document 2: Container default/web: spec\.resources\.memory: "64MB" is not a quantity`),
		regexp.MustCompile(`^.*/c-unknown\.yaml: document 1: Container default/web: spec\.comand: unknown field; did you mean command\?$`),
		regexp.MustCompile(`^.*/d-kind\.yaml: document 1: .*kind: .*Contianer.* is not one of`),
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(wants) {
		t.Fatalf("validate broken dir: %d lines, want one per error (%d):\n%s", len(lines), len(wants), r.stdout)
	}
	for i, re := range wants {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want match of %s", i+1, lines[i], re)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "a-good.yaml") || strings.Contains(r.stdout+r.stderr, "notes.txt") {
		t.Errorf("validate names a file with no error:\n%s%s", r.stdout, r.stderr)
	}

	// The shipped examples are valid; -f repeats and - reads stdin.
	r = runBin(t, -1, berth, append(noDaemon, "validate", "-f", "../examples/manifests")...)
	if r.code != 0 || !regexp.MustCompile(`^\d+ objects in 3 files valid\n$`).MatchString(r.stdout) {
		t.Fatalf("validate examples: exit %d, want 0 and a summary\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, -1, berth, append(noDaemon, "validate", "-f", filepath.Join(dir, "a-good.yaml"), "-f", "../examples/manifests/web.yaml")...)
	if r.code != 0 || r.stdout != "3 objects in 2 files valid\n" {
		t.Fatalf("validate two files: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	// Usage and read errors exit 2, as for diff.
	for _, args := range [][]string{{"validate"}, {"validate", "-f", filepath.Join(dir, "missing.yaml")}} {
		if r := runBin(t, -1, berth, append(noDaemon, args...)...); r.code != 2 {
			t.Errorf("berth %v: exit %d, want 2\nstderr:\n%s", args, r.code, r.stderr)
		}
	}
}

// TestCLI_ExplainSchema: berth explain and berth schema need no berthd and
// print the reference built into the binary.
func TestCLI_ExplainSchema(t *testing.T) {
	berth := testutil.Bin(t, "berth")
	noDaemon := []string{"--address", "/nonexistent/berth.sock"}
	r := runBin(t, -1, berth, append(noDaemon, "explain", "container.spec.resources.memory")...)
	want := "KIND:     Container\nVERSION:  berth.dev/v1\n\nFIELD:    spec.resources.memory <quantity>\nDEFAULT:  no limit\n\nDESCRIPTION:\n  `memory` in bytes: \"64Mi\", \"1G\", \"1048576\".\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("explain: exit %d\n%s\nwant:\n%s", r.code, r.stdout, want)
	}
	r = runBin(t, -1, berth, append(noDaemon, "explain", "container.spec.resorces")...)
	if r.code != 2 || !strings.Contains(r.stderr, `did you mean "resources"?`) {
		t.Fatalf("explain typo: exit %d, want 2 with a suggestion\n%s", r.code, r.stderr)
	}
	r = runBin(t, -1, berth, append(noDaemon, "schema")...)
	var s map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &s) != nil || s["$id"] == nil {
		t.Fatalf("schema: exit %d, not a JSON Schema:\n%.300s", r.code, r.stdout)
	}
}
