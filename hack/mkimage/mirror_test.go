package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAptMirror(t *testing.T) {
	t.Parallel()
	const deb822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`
	for _, tc := range []struct {
		name  string
		files map[string]string // under etc/apt
		want  string            // "" = an error naming DEBIAN_MIRROR
	}{
		{"deb822 only, no sources.list", map[string]string{"sources.list.d/debian.sources": deb822}, "http://deb.debian.org/debian"},
		{"security stanza first", map[string]string{"sources.list.d/debian.sources": deb822[strings.Index(deb822, "\n\n")+2:] + "\n" + deb822[:strings.Index(deb822, "\n\n")]},
			"http://deb.debian.org/debian"},
		{"one-line", map[string]string{"sources.list": "# comment\ndeb-src http://src.example/debian bookworm main\ndeb http://mirror.example/debian/ bookworm main\n"},
			"http://mirror.example/debian"},
		{"one-line with options", map[string]string{"sources.list": "deb [arch=amd64 signed-by=/k.gpg] https://m.example/debian bookworm main contrib\n"},
			"https://m.example/debian"},
		{"other suites only", map[string]string{"sources.list.d/x.list": "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"}, ""},
		{"disabled stanza and ignored file", map[string]string{
			"sources.list.d/a.sources":     "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\n",
			"sources.list.d/b.list.save":   "deb http://stale.example/debian bookworm main\n",
			"sources.list.d/c.sources":     "Types: deb deb-src\nURIs:\n http://cont.example/debian\nSuites: bookworm\n",
			"sources.list.d/z.disabled-by": "deb http://nope.example/debian bookworm main\n"},
			"http://cont.example/debian"},
		{"nothing at all", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			for p, s := range tc.files {
				if err := os.WriteFile(filepath.Join(root, "etc/apt", p), []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := aptMirror(root, "bookworm")
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "DEBIAN_MIRROR") {
					t.Fatalf("got %q, %v; want an error naming DEBIAN_MIRROR", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
