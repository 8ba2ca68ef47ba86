package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// TestInstall: make install's script puts the binaries, a systemd unit that
// points at them and lets shims outlive berthd, man pages, completions and
// a default config where distributions expect them, and never overwrites a
// config the operator edited.
func TestInstall(t *testing.T) {
	bin := filepath.Dir(testutil.Bin(t, "berthd"))
	dest := t.TempDir()
	install := func() string {
		cmd := exec.Command(filepath.Join(testutil.RepoRoot(t), "hack", "install.sh"), bin)
		cmd.Env = append(os.Environ(), "PREFIX=/usr", "DESTDIR="+dest)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
		return string(out)
	}
	install()
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"usr/bin/berthd", 0o755}, {"usr/bin/berth", 0o755}, {"usr/bin/berth-shim", 0o755}, {"usr/bin/berth-init", 0o755},
		{"usr/lib/systemd/system/berthd.service", 0o644},
		{"usr/share/man/man1/berth.1", 0o644}, {"usr/share/man/man1/berth-run.1", 0o644},
		{"usr/share/bash-completion/completions/berth", 0o644},
		{"usr/share/zsh/site-functions/_berth", 0o644},
		{"usr/share/fish/vendor_completions.d/berth.fish", 0o644},
		{"etc/berth/config.yaml", 0o644},
	} {
		st, err := os.Stat(filepath.Join(dest, f.path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if st.Mode().Perm()&^0o022 != f.mode&^0o022 { // umask may clear group/other write only
			t.Errorf("%s: mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/lib/systemd/system/berthd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/bin/berthd\n", "KillMode=process\n", "Delegate=yes\n", "Type=notify\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	page, _ := os.ReadFile(filepath.Join(dest, "usr/share/man/man1/berth-run.1"))
	if !strings.Contains(string(page), "detach") {
		t.Errorf("berth-run.1 does not document --detach:\n%.400s", page)
	}
	def, err := exec.Command(filepath.Join(bin, "berthd"), "config", "default").Output()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dest, "etc/berth/config.yaml")
	if got, _ := os.ReadFile(cfgPath); string(got) != string(def) {
		t.Errorf("installed config is not berthd's defaults:\n%s", got)
	}
	edited := "root: /srv/berth\n"
	if err := os.WriteFile(cfgPath, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	install()
	if got, _ := os.ReadFile(cfgPath); string(got) != edited {
		t.Errorf("a second install overwrote the operator's config: %q", got)
	}
}

// TestSystemdNotify: under a Type=notify unit, berthd tells systemd it is
// ready once its API socket accepts, so `systemctl start berthd` returns
// when berth can be used.
func TestSystemdNotify(t *testing.T) {
	testutil.RequireRoot(t)
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := harness.StartDaemon(t, harness.DaemonOptions{Env: []string{"NOTIFY_SOCKET=" + sock}})
	if err := l.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := l.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notify socket got %q, %v; want READY=1", buf[:n], err)
	}
	d.MustCLI(t, "namespace", "ls") // and it really is ready
}
