package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
)

// DaemonOptions say how StartDaemon runs berthd. The zero value runs
// bin/berthd on a fresh root and state with an empty manifest directory,
// metrics on a free 127.0.0.1 port and --log-level debug.
type DaemonOptions struct {
	// Config, if set, is written to a file passed with --config.
	Config string
	// Manifests is the watched manifest directory; empty means a fresh empty
	// one (never the host's /etc/berth/manifests).
	Manifests string
	// DefaultManifests passes no --manifests, so berthd watches its default
	// (/etc/berth/manifests); Manifests is then ignored.
	DefaultManifests bool
	// MetricsAddress overrides the free 127.0.0.1 port picked for --metrics-address.
	MetricsAddress string
	// Root, if set, is berthd's --root (a loopback btrfs, say) instead of
	// a fresh directory under t.TempDir().
	Root string
	// LogLevel is passed as --log-level; empty means "debug".
	LogLevel string
	// Args are extra flags appended after the harness's own.
	Args []string
	// Env is added to the test's environment (e.g. "BERTH_FAILPOINTS=…").
	Env []string
	// Berthd and Berth are the binaries; empty means testutil.Bin("berthd")
	// and testutil.Bin("berth"), the latter looked up on the first CLI call.
	Berthd, Berth string
	// StartTimeout bounds the wait for the socket (default 10 s);
	// StopTimeout the wait after SIGTERM before SIGKILL (default 15 s);
	// CLITimeout one CLI run (default 2 min).
	StartTimeout, StopTimeout, CLITimeout time.Duration
	// AllowUncleanStop stops Stop from failing the test when berthd exits
	// non-zero or needs SIGKILL after SIGTERM (for tests of that case).
	AllowUncleanStop bool
}

// Daemon is one berthd process on its own root and state. The test that
// started it owns it; its methods fail that test on error and must be
// called from the test's goroutine.
type Daemon struct {
	// Root, State and Manifests are the directories passed to berthd;
	// Socket is its API socket (State/berth.sock); MetricsAddr its metrics
	// address; LogPath the file its stdout and stderr go to.
	Root, State, Manifests, Socket, MetricsAddr, LogPath string
	// CRISocket is its CRI socket (State/cri.sock): never /run/berth.
	CRISocket string
	// ConfigPath is the --config file, empty if none was given.
	ConfigPath string
	// CNIConfDir is the daemon's own --cni-conf-dir (never /etc/berth);
	// Bridge and Subnet its built-in network's (--cni-bridge,
	// --cni-subnet), unique on the host while the test runs, so parallel
	// daemons never share a bridge or lease the same address.
	CNIConfDir, Bridge, Subnet string

	t      testing.TB
	opts   DaemonOptions
	args   []string
	env    []string
	p      *proc
	starts int
}

// StartDaemon starts berthd with a fresh root under t.TempDir() and a state
// directory under /tmp/berth-e2e-* (short, so that the unix socket paths
// berthd and its shims create stay under 108 bytes), waits until its socket
// accepts a connection, and in t.Cleanup stops it, kills berth-shim
// processes and runc containers left under its root or state, unmounts
// what remains mounted there, and prints its log if the test failed.
func StartDaemon(t testing.TB, opts DaemonOptions) *Daemon {
	t.Helper()
	if opts.Berthd == "" {
		opts.Berthd = testutil.Bin(t, "berthd")
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 15 * time.Second
	}
	if opts.CLITimeout == 0 {
		opts.CLITimeout = 2 * time.Minute
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	dir := t.TempDir()
	state, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the stop below, so it runs after it (cleanups are LIFO).
	t.Cleanup(func() {
		if err := os.RemoveAll(state); err != nil {
			t.Errorf("remove state %s: %v", state, err)
		}
	})
	root := opts.Root
	if root == "" {
		root = filepath.Join(dir, "root")
	}
	d := &Daemon{
		Root:        root,
		State:       state,
		Manifests:   opts.Manifests,
		Socket:      filepath.Join(state, "berth.sock"),
		CRISocket:   filepath.Join(state, "cri.sock"),
		MetricsAddr: opts.MetricsAddress,
		LogPath:     filepath.Join(dir, "berthd.log"),
		t:           t,
		opts:        opts,
	}
	d.CNIConfDir = filepath.Join(dir, "cni", "net.d")
	slot, err := takeNetSlot(t)
	if err != nil {
		t.Fatal(err)
	}
	d.Bridge, d.Subnet = fmt.Sprintf("berth-e%d", slot), fmt.Sprintf("10.86.%d.0/24", slot)
	if opts.DefaultManifests {
		d.Manifests = "/etc/berth/manifests"
	} else if d.Manifests == "" {
		d.Manifests = filepath.Join(dir, "manifests")
		if err := os.MkdirAll(d.Manifests, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if d.MetricsAddr == "" {
		if d.MetricsAddr, err = freeAddr(); err != nil {
			t.Fatal(err)
		}
	}
	d.args = []string{"--root", d.Root, "--state", d.State, "--address", d.Socket, "--cri-address", d.CRISocket,
		"--metrics-address", d.MetricsAddr, "--log-level", opts.LogLevel}
	if !opts.DefaultManifests {
		d.args = append(d.args, "--manifests", d.Manifests)
	}
	d.args = append(d.args, "--cni-conf-dir", d.CNIConfDir, "--cni-bridge", d.Bridge, "--cni-subnet", d.Subnet)
	if opts.Config != "" {
		d.ConfigPath = filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(d.ConfigPath, []byte(opts.Config), 0o644); err != nil {
			t.Fatal(err)
		}
		d.args = append(d.args, "--config", d.ConfigPath)
	}
	d.args = append(d.args, opts.Args...)
	d.env = append(os.Environ(), opts.Env...)

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("berthd log (%s):\n%s", d.LogPath, logTail(d.LogPath, 64<<10))
		}
	})
	t.Cleanup(d.cleanup)
	d.start()
	return d
}

// start launches berthd and waits until its socket accepts a connection.
// When the metrics port the harness picked was taken in the meantime (by a
// parallel test), it retries on another.
func (d *Daemon) start() {
	d.t.Helper()
	for attempt := 1; ; attempt++ {
		d.starts++
		if d.starts > 1 {
			// Mark restarts in the log so a failure shows which run said what.
			if f, err := os.OpenFile(d.LogPath, os.O_WRONLY|os.O_APPEND, 0); err == nil {
				fmt.Fprintf(f, "=== harness: start %d of berthd ===\n", d.starts)
				f.Close()
			}
		}
		var logStart int64
		if st, err := os.Stat(d.LogPath); err == nil {
			logStart = st.Size()
		}
		p, err := startProc(d.opts.Berthd, d.args, d.env, d.LogPath)
		if err != nil {
			d.t.Fatal(err)
		}
		d.p = p
		msg, ok := poll(d.opts.StartTimeout, func() (bool, string) {
			if p.exited() {
				return true, ""
			}
			c, err := net.DialTimeout("unix", d.Socket, time.Second)
			if err != nil {
				return false, err.Error()
			}
			c.Close()
			return true, ""
		})
		switch {
		case !ok:
			d.t.Fatalf("berthd (pid %d) not serving %s within %v: %s", p.pid(), d.Socket, d.opts.StartTimeout, msg)
		case !p.exited():
			return
		case attempt < 3 && d.opts.MetricsAddress == "" && d.portTaken(logStart):
			if d.MetricsAddr, err = freeAddr(); err != nil {
				d.t.Fatal(err)
			}
			i := slices.Index(d.args, "--metrics-address")
			d.args[i+1] = d.MetricsAddr
			continue
		}
		d.t.Fatalf("berthd exited during start (%s)\nargs: %s\nlog:\n%s",
			p.exitDescription(), strings.Join(d.args, " "), logTail(d.LogPath, 32<<10))
	}
}

// portTaken reports whether the log written since offset says the metrics
// address was in use.
func (d *Daemon) portTaken(offset int64) bool {
	b, err := os.ReadFile(d.LogPath)
	if err != nil || int64(len(b)) < offset {
		return false
	}
	return strings.Contains(string(b[offset:]), "address already in use")
}

// PID is the process id of the running berthd, 0 if it is not running.
func (d *Daemon) PID() int {
	if d.p == nil || d.p.exited() {
		return 0
	}
	return d.p.pid()
}

// Running reports whether berthd is running.
func (d *Daemon) Running() bool { return d.PID() != 0 }

// Stop sends SIGTERM and waits for berthd to exit; after StopTimeout it
// sends SIGKILL. Unless AllowUncleanStop is set, needing SIGKILL or a
// non-zero exit fails the test. Stopping a stopped daemon does nothing.
func (d *Daemon) Stop() {
	d.t.Helper()
	if d.p == nil {
		return
	}
	pid := d.p.pid()
	forced, err := d.p.stop(d.opts.StopTimeout)
	d.p = nil
	if d.opts.AllowUncleanStop {
		return
	}
	if forced {
		d.t.Errorf("berthd (pid %d) did not exit within %v of SIGTERM and was killed", pid, d.opts.StopTimeout)
	} else if !cleanExit(err) {
		d.t.Errorf("berthd (pid %d) exited uncleanly on SIGTERM: %v", pid, err)
	}
}

// Kill9 sends SIGKILL and waits until berthd is reaped, as a crash would
// end it. Its shims, mounts and socket file stay behind, as after a crash.
func (d *Daemon) Kill9() {
	if d.p == nil {
		return
	}
	d.p.kill()
	d.p = nil
}

// Restart starts berthd again on the same root, state, socket, manifests and
// flags, stopping it first (as Stop does) if it is still running.
func (d *Daemon) Restart() {
	d.t.Helper()
	d.Stop()
	d.start()
}

// Log returns what berthd has written to stdout and stderr so far, across
// restarts.
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		d.t.Fatalf("read berthd log: %v", err)
	}
	return string(b)
}

// cleanup runs in t.Cleanup: stop berthd, then remove what it leaves.
func (d *Daemon) cleanup() {
	if d.p != nil {
		pid := d.p.pid()
		forced, err := d.p.stop(d.opts.StopTimeout)
		d.p = nil
		if !d.opts.AllowUncleanStop && (forced || !cleanExit(err)) {
			d.t.Errorf("berthd (pid %d) did not stop cleanly at the end of the test (killed=%v): %v", pid, forced, err)
		}
	}
	dirs := []string{d.Root, d.State}
	for _, err := range removeContainers(dirs) {
		d.t.Errorf("cleanup containers: %v", err)
	}
	for _, err := range killShims(dirs) {
		d.t.Errorf("cleanup shims: %v", err)
	}
	for _, err := range unmountUnder(dirs) {
		d.t.Errorf("cleanup mounts: %v", err)
	}
	removeFirewall(networkSubnets(d.Subnet, d.CNIConfDir))
	for _, err := range removeBridges(d.Bridge, d.CNIConfDir) {
		d.t.Errorf("cleanup networks: %v", err)
	}
}
