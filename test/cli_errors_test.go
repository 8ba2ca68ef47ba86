package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// nobody is the unprivileged user the tests below run binaries as.
const nobody = 65534

type binResult struct {
	stdout, stderr string
	code           int
}

// runBin runs bin with args as uid (-1: the test's own user), with an
// environment that points nowhere (no BERTH_ADDRESS), and fails t if it
// does not exit within 30 s: a berthd that started a daemon would not.
func runBin(t *testing.T, uid int, bin string, args ...string) binResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := binResult{out.String(), errb.String(), 0}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s did not exit within 30 s\nstderr:\n%s", bin, strings.Join(args, " "), r.stderr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", bin, err)
	}
	return r
}

func requireAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s was created (stat: %v)", path, err)
	}
}

// TestCLI_BerthdArguments: `berthd version` prints the version and exits
// without touching its root; a stray argument exits 2 with the usage and
// names the argument instead of starting a daemon on the system paths.
func TestCLI_BerthdArguments(t *testing.T) {
	berthd := testutil.Bin(t, "berthd")
	root := filepath.Join(t.TempDir(), "root")
	t.Run("version", func(t *testing.T) {
		r := runBin(t, -1, berthd, "--root", root, "--state", root+"-state", "version")
		client := runBin(t, -1, testutil.Bin(t, "berth"), "version", "-o", "json", "--address", "/nonexistent/berth.sock")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "berthd:\n  Version: ") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and the version", r.code, r.stdout, r.stderr)
		}
		version := strings.Fields(strings.SplitN(r.stdout, "\n", 3)[1])[1]
		if !strings.Contains(client.stdout, `"version": "`+version+`"`) {
			t.Fatalf("berthd says version %s, berth version -o json says\n%s", version, client.stdout)
		}
		requireAbsent(t, root)
		requireAbsent(t, root+"-state")
	})
	for _, tc := range []struct {
		args  []string
		named string
	}{
		{[]string{"bogus"}, "bogus"},
		{[]string{"--root", root, "bogus"}, "bogus"},
		{[]string{"config", "bogus"}, "config bogus"},
		{[]string{"version", "extra"}, "version extra"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runBin(t, -1, berthd, tc.args...)
			want := `berthd: unknown command "` + tc.named + `"` + "\nusage: berthd [flags]\n       berthd version\n       berthd config default\n"
			if r.code != 2 || r.stderr != want {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2, the argument named and the usage", r.code, r.stderr)
			}
			requireAbsent(t, root)
		})
	}
}

// TestCLI_NotRoot: berth run by a user who cannot open the root-only socket
// is told so and how to reach it, not asked whether berthd runs (that hint
// stays for a socket that does not exist); berthd run by that user refuses
// at start with the reason instead of failing at the first unpack.
func TestCLI_NotRoot(t *testing.T) {
	testutil.RequireRoot(t)
	berth := testutil.Bin(t, "berth")
	d := harness.StartDaemon(t, harness.DaemonOptions{})
	t.Run("berth as nobody", func(t *testing.T) {
		r := runBin(t, nobody, berth, "--address", d.Socket, "get", "tasks")
		want := "berth: connect to berthd at " + d.Socket + ": permission denied: the API socket is root-only (mode 0600); run berth as root (sudo berth ...), or set --address or BERTH_ADDRESS to a socket you can reach"
		if r.code == 0 || !strings.HasPrefix(r.stderr, want) || strings.Contains(r.stderr, "is berthd running") {
			t.Fatalf("exit %d, stderr:\n%s\nwant it to start with:\n%s", r.code, r.stderr, want)
		}
	})
	t.Run("berth version -o json as root", func(t *testing.T) {
		var v struct {
			Client struct{ Version string }
			Server struct{ Version, Root, State string }
		}
		if err := json.Unmarshal([]byte(d.MustCLI(t, "version", "-o", "json")), &v); err != nil {
			t.Fatal(err)
		}
		if v.Client.Version == "" || v.Server.Version != v.Client.Version || v.Server.Root != d.Root || v.Server.State != d.State {
			t.Fatalf("version -o json: %+v; want both versions and root %s, state %s", v, d.Root, d.State)
		}
	})
	t.Run("berth without a daemon", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "none.sock")
		r := runBin(t, -1, berth, "--address", sock, "get", "tasks")
		if r.code == 0 || !strings.Contains(r.stderr, "(is berthd running? set --address or BERTH_ADDRESS)") {
			t.Fatalf("exit %d, stderr:\n%s\nwant the is-berthd-running hint", r.code, r.stderr)
		}
	})
	t.Run("berthd as nobody", func(t *testing.T) {
		// A directory nobody may write to, so that only the refusal, not a
		// failed mkdir, can be what stops it.
		dir, err := os.MkdirTemp("", "berth-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(dir, "root")
		r := runBin(t, nobody, testutil.Bin(t, "berthd"), "--root", root, "--state", filepath.Join(dir, "state"),
			"--manifests", "", "--metrics-address", "off")
		want := "berthd: must run as root (running as uid 65534): berthd mounts overlayfs, creates cgroups and chowns unpacked image layers\n"
		if r.code != 1 || r.stderr != want {
			t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", r.code, r.stderr, want)
		}
		requireAbsent(t, root)
	})
}
