package testimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckLayered_ReportsWhatIsWrong: the check names each thing a bad
// layer apply gets wrong (the right tree is checked by the unpack tests,
// which apply the image for real).
func TestCheckLayered_ReportsWhatIsWrong(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for p, data := range map[string]string{
		"data/keep.txt":             "keep\n",
		"data/override.txt":         "v1\n", // the lower layer's version won
		"data/.wh.delete-me.txt":    "",     // whiteout applied as a file
		"etc/motd":                  "layer1 motd\n",
		"data/opaque-dir/old-1.txt": "old-1\n",
		"data/opaque-dir/new.txt":   "new\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(CheckLayered(root), "\n")
	for _, want := range []string{
		`/data/override.txt: content "v1\n"`,
		"whiteout left in the rootfs: /data/.wh.delete-me.txt",
		"/etc/motd: want it removed",
		"/data/opaque-dir holds [new.txt old-1.txt]",
		"/data/links/symlink-rel: ",
		"/usr/local/bin/suid-sh: ",
		"/etc/passwd lacks",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("CheckLayered lacks %q; it said:\n%s", want, got)
		}
	}
	if os.Geteuid() == 0 && strings.Contains(got, "/data/keep.txt") { // owner 0:0 needs root
		t.Errorf("CheckLayered faults the correct /data/keep.txt:\n%s", got)
	}
}
