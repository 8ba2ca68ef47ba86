package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/spec"
)

// Hostile manifests (issue 18, items 7–10): end-to-end against a real
// berthd.

// berth apply -f and diff -f on files that are not manifests: a symlink to
// a shadow file is read but not echoed (at most a short escaped prefix of
// a line), binary and oversized files are refused before anything is
// sent, and berthd stays up.
func TestHostile_ApplyDoesNotEchoFiles(t *testing.T) {
	d := startDecl(t, "")
	dir := t.TempDir()
	shadow := filepath.Join(dir, "shadow")
	secret := "root:$y$j9T$SaltSaltSalt$HashHashHash:20228:0:99999:7:::\nalice:$6$pepper$PEPPERSECRET:20228:0:99999:7:::\n"
	if err := os.WriteFile(shadow, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "web.yaml")
	if err := os.Symlink(shadow, link); err != nil {
		t.Fatal(err)
	}
	binary := filepath.Join(dir, "bin.yaml")
	if err := os.WriteFile(binary, []byte("\x7fELF\x02\x01\x01\x00\x00\x00SECRETBIN"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("# padding\n", spec.MaxFileSize/10+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"apply", "diff"} {
		r := d.CLI(verb, "-f", link)
		if r.ExitCode == 0 || (verb == "diff" && r.ExitCode < 2) {
			t.Errorf("%s -f a shadow file: exit %d, want an error\n%s", verb, r.ExitCode, r)
		}
		out := r.Stdout + r.Stderr
		if !strings.Contains(out, "not a berth manifest") {
			t.Errorf("%s -f a shadow file does not say it is not a manifest:\n%s", verb, out)
		}
		for _, s := range []string{"SaltSalt", "HashHash", "alice", "PEPPER"} {
			if strings.Contains(out, s) {
				t.Errorf("%s -f a shadow file echoes %q:\n%s", verb, s, out)
			}
		}
		for file, want := range map[string]string{binary: "not text", big: "more than the limit", "/dev/zero": "not a regular file"} {
			r := d.CLI(verb, "-f", file)
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, want) || strings.Contains(r.Stderr, "SECRETBIN") {
				t.Errorf("%s -f %s: want a refusal saying %q:\n%s", verb, file, want, r)
			}
		}
	}
	if !d.Running() {
		t.Fatal("berthd died")
	}
	if r := d.CLI("get", "tasks"); r.ExitCode != 0 {
		t.Errorf("berthd does not answer after hostile files: %s", r)
	}
}
