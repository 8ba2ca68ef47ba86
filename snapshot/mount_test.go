package snapshot

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/internal/testutil"
)

// longChain makes n lower dirs, each holding file <i>, and an upper/work.
func longChain(t *testing.T, n int) (Mount, string) {
	dir := filepath.Join(t.TempDir(), "snapshots-with-a-long-directory-name-to-overflow-a-page")
	var lowers []string
	for i := n - 1; i >= 0; i-- {
		l := filepath.Join(dir, fmt.Sprint(i), "fs")
		if err := os.MkdirAll(l, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l, fmt.Sprint(i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append(lowers, l)
	}
	up, work := filepath.Join(dir, "up", "fs"), filepath.Join(dir, "up", "work")
	for _, d := range []string{up, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Mount{Type: "overlay", Source: "overlay", Options: []string{
		"workdir=" + work, "upperdir=" + up, "lowerdir=" + strings.Join(lowers, ":")}}, dir
}

func TestMountAll_LongChain(t *testing.T) {
	testutil.RequireRoot(t)
	m, _ := longChain(t, 130)
	if l := len(strings.Join(m.Options, ",")); l < os.Getpagesize() {
		t.Fatalf("options are %d bytes, want more than a page", l)
	}
	mounters := map[string]func(target string) error{
		"MountAll":     func(target string) error { return MountAll([]Mount{m}, target) },
		"relative":     func(target string) error { return mountRelative(m, target) },
		"ShellCommand": func(target string) error { return sh(ShellCommand([]Mount{m}, target)) },
	}
	for name, mount := range mounters {
		t.Run(name, func(t *testing.T) {
			target := t.TempDir()
			if err := mount(target); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := UnmountAll(target); err != nil {
					t.Error(err)
				}
			}()
			for _, f := range []string{"0", "129"} {
				if _, err := os.Stat(filepath.Join(target, f)); err != nil {
					t.Errorf("file of layer %s not visible: %v", f, err)
				}
			}
		})
	}
}

func sh(script string) error {
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", script, err, out)
	}
	return nil
}

func TestShellCommand(t *testing.T) {
	tests := []struct {
		name   string
		mounts []Mount
		want   string
	}{
		{"bind", []Mount{{Type: "bind", Source: "/s/1/fs", Options: []string{"rbind", "ro"}}},
			"mount -t none /s/1/fs /t -o rbind,ro\n"},
		{"overlay", []Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/s/2/fs:/s/1/fs"}}},
			"mount -t overlay overlay /t -o lowerdir=/s/2/fs:/s/1/fs\n"},
		{"quoted", []Mount{{Type: "bind", Source: "/a b", Options: []string{"rbind"}}},
			"mount -t none '/a b' /t -o rbind\n"},
	}
	for _, tc := range tests {
		if got := ShellCommand(tc.mounts, "/t"); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	long := Mount{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Repeat("/var/lib/berth/snapshots/12345/fs:", 150) + "/var/lib/berth/snapshots/1/fs"}}
	got := ShellCommand([]Mount{long}, "/t")
	if !strings.HasPrefix(got, "(cd /var/lib/berth/snapshots && mount -t overlay overlay /t -o lowerdir=12345/fs:") {
		t.Errorf("long chain: got %.120q…", got)
	}
}

func TestUnmountAll_NotMounted(t *testing.T) {
	if err := UnmountAll(t.TempDir()); err != nil && os.Geteuid() == 0 {
		t.Errorf("unmount of a plain dir: %v", err)
	}
}
