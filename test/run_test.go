package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// runDaemon starts berthd with the busybox test image imported as
// "busybox:latest".
func runDaemon(t *testing.T) *harness.Daemon {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	images := testutil.TestImages(t, "busybox")
	d := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "info", AllowUncleanStop: true})
	d.MustCLI(t, "image", "import", filepath.Join(images, "busybox"))
	return d
}

type taskJSON struct {
	ID         string `json:"id"`
	Pid        int    `json:"pid"`
	Status     string `json:"status"`
	ExitStatus int    `json:"exitStatus"`
	OOMKilled  bool   `json:"oomKilled"`
}

func tasks(t *testing.T, d *harness.Daemon) map[string]taskJSON {
	t.Helper()
	var ts []taskJSON
	if err := json.Unmarshal([]byte(d.MustCLI(t, "task", "ls", "-o", "json")), &ts); err != nil {
		t.Fatal(err)
	}
	out := map[string]taskJSON{}
	for _, x := range ts {
		out[x.ID] = x
	}
	return out
}

func waitStatus(t *testing.T, d *harness.Daemon, id, status string) taskJSON {
	t.Helper()
	var got taskJSON
	harness.Eventually(t, 15*time.Second, func() (bool, string) {
		got = tasks(t, d)[id]
		return got.Status == status, fmt.Sprintf("task %s: %+v, want %s", id, got, status)
	})
	return got
}

// events counts the events of a topic for a container in berthd's log.
func events(t *testing.T, d *harness.Daemon, topic, id string) int {
	t.Helper()
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)msg=event topic=` + regexp.QuoteMeta(topic) + ` namespace=\S+ id=` + regexp.QuoteMeta(id) + `$`)
	return len(re.FindAll(b, -1))
}

func TestRun_Process(t *testing.T) {
	d := runDaemon(t)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"true", []string{"busybox:latest", "c-true", "true"}, 0, ""},
		{"exit 3", []string{"busybox:latest", "c-exit", "sh", "-c", "exit 3"}, 3, ""},
		{"env", []string{"--env", "GREETING=hello", "busybox:latest", "c-env", "sh", "-c", "echo $GREETING"}, 0, "hello\n"},
		{"user", []string{"--user", "nobody", "busybox:latest", "c-user", "id", "-u"}, 0, "65534\n"},
		{"uid", []string{"--user", "65534:65534", "busybox:latest", "c-uid", "id", "-g"}, 0, "65534\n"},
		{"workdir", []string{"--workdir", "/tmp", "busybox:latest", "c-cwd", "pwd"}, 0, "/tmp\n"},
		{"hostname", []string{"--hostname", "edge-1", "busybox:latest", "c-host", "hostname"}, 0, "edge-1\n"},
		{"stderr", []string{"busybox:latest", "c-stderr", "sh", "-c", "echo out; echo err >&2"}, 0, "out\n"},
		{"read-only rootfs", []string{"--read-only", "busybox:latest", "c-ro", "touch", "/x"}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := d.CLI(append([]string{"run", "--rm"}, tc.args...)...)
			if r.ExitCode != tc.wantCode || r.Stdout != tc.wantOut {
				t.Fatalf("got exit %d stdout %q, want %d %q\n%s", r.ExitCode, r.Stdout, tc.wantCode, tc.wantOut, r)
			}
			if tc.name == "read-only rootfs" && !strings.Contains(r.Stderr, "Read-only file system") {
				t.Errorf("stderr %q: want Read-only file system", r.Stderr)
			}
			if tc.name == "stderr" && r.Stderr != "err\n" {
				t.Errorf("stderr %q, want err", r.Stderr)
			}
		})
	}
	if out := d.MustCLI(t, "container", "ls", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("containers left after run --rm: %s", out)
	}
}

func TestRun_TaskLifecycle(t *testing.T) {
	d := runDaemon(t)
	// pid 1 ignores signals it has no handler for, so the shell traps TERM.
	d.MustCLI(t, "run", "-d", "busybox:latest", "term", "sh", "-c", `trap "exit 143" TERM; echo started; while true; do sleep 1; done`)
	d.MustCLI(t, "run", "-d", "busybox:latest", "sleeper", "sleep", "1000")
	term := waitStatus(t, d, "term", "running")
	sleeper := waitStatus(t, d, "sleeper", "running")

	t.Run("logs", func(t *testing.T) {
		harness.Eventually(t, 5*time.Second, func() (bool, string) {
			r := d.CLI("logs", "term")
			return r.Stdout == "started\n", r.String()
		})
	})
	t.Run("pause freezes, resume thaws", func(t *testing.T) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sleeper.Pid))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^\d+:freezer:(.*)$`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no freezer cgroup in %s", b)
		}
		state := filepath.Join("/sys/fs/cgroup/freezer", string(m[1]), "freezer.state")
		read := func() string { b, _ := os.ReadFile(state); return strings.TrimSpace(string(b)) }
		d.MustCLI(t, "task", "pause", "sleeper")
		if got := read(); got != "FROZEN" {
			t.Errorf("after pause: %s = %q, want FROZEN", state, got)
		}
		if got := tasks(t, d)["sleeper"].Status; got != "paused" {
			t.Errorf("status %q, want paused", got)
		}
		d.MustCLI(t, "task", "resume", "sleeper")
		if got := read(); got != "THAWED" {
			t.Errorf("after resume: %s = %q, want THAWED", state, got)
		}
	})
	t.Run("exec shares the namespaces", func(t *testing.T) {
		want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", sleeper.Pid))
		if err != nil {
			t.Fatal(err)
		}
		out := d.MustCLI(t, "task", "exec", "sleeper", "readlink", "/proc/self/ns/pid")
		if strings.TrimSpace(out) != want {
			t.Errorf("exec pid namespace %q, want %q", out, want)
		}
		if r := d.CLI("task", "exec", "sleeper", "sh", "-c", "exit 5"); r.ExitCode != 5 {
			t.Errorf("exec exit: %s", r)
		}
	})
	t.Run("SIGTERM", func(t *testing.T) {
		d.MustCLI(t, "task", "kill", "term")
		if got := waitStatus(t, d, "term", "stopped"); got.ExitStatus != 143 {
			t.Errorf("exit status %d, want 143", got.ExitStatus)
		}
	})
	t.Run("kill -9 of the process", func(t *testing.T) {
		if err := syscall.Kill(sleeper.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if got := waitStatus(t, d, "sleeper", "stopped"); got.ExitStatus != 137 {
			t.Errorf("exit status %d, want 137", got.ExitStatus)
		}
	})
	_ = term
	if r := d.CLI("container", "rm", "sleeper"); r.ExitCode == 0 {
		t.Errorf("container rm with a task: want refused, got %s", r)
	}
	d.MustCLI(t, "task", "rm", "term", "sleeper")
	d.MustCLI(t, "container", "rm", "term", "sleeper")
	if got := events(t, d, "/tasks/exit", "sleeper"); got != 1 {
		t.Errorf("/tasks/exit events of sleeper: %d, want 1", got)
	}
	if mounts := harness.MountsUnder(d.State); len(mounts) != 0 {
		t.Errorf("mounts left under state: %v", mounts)
	}
}

func TestRun_Limits(t *testing.T) {
	d := runDaemon(t)
	t.Run("memory", func(t *testing.T) {
		r := d.CLI("run", "--rm", "--memory", "16Mi", "busybox:latest", "hog", "sh", "-c", "x=a; while true; do x=$x$x; done")
		if r.ExitCode != 137 {
			t.Fatalf("memory hog: %s, want exit 137", r)
		}
		if got := events(t, d, "/tasks/oom", "hog"); got != 1 {
			t.Errorf("/tasks/oom events: %d, want 1", got)
		}
	})
	t.Run("pids", func(t *testing.T) {
		// Twenty background sleeps need 21 pids; at 8 the shell's fork
		// fails, which a non-interactive sh treats as fatal (exit 2).
		r := d.CLI("run", "--rm", "--pids", "8", "busybox:latest", "forker", "sh", "-c",
			`for i in $(seq 1 20); do sleep 1 & done; wait`)
		if r.ExitCode != 2 || !strings.Contains(r.Stderr, "can't fork") {
			t.Errorf("fork loop under --pids 8: %s, want exit 2 and can't fork", r)
		}
		if r := d.CLI("run", "--rm", "--pids", "32", "busybox:latest", "forker", "sh", "-c",
			`for i in $(seq 1 20); do sleep 1 & done; wait`); r.ExitCode != 0 {
			t.Errorf("fork loop under --pids 32: %s, want exit 0", r)
		}
	})
}

func TestRun_SurvivesBerthdKill(t *testing.T) {
	d := runDaemon(t)
	const n = 20
	for i := range n {
		d.MustCLI(t, "run", "-d", "busybox:latest", fmt.Sprintf("s%d", i), "sleep", "1000")
	}
	d.MustCLI(t, "run", "-d", "busybox:latest", "victim", "sleep", "1000")
	before := tasks(t, d)
	d.Kill9()
	if err := syscall.Kill(before["victim"].Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.Restart()
	after := tasks(t, d)
	for i := range n {
		id := fmt.Sprintf("s%d", i)
		if b, a := before[id], after[id]; a.Status != "running" || a.Pid != b.Pid {
			t.Errorf("%s: before %+v, after %+v: want running with the same pid", id, b, a)
		}
	}
	v := waitStatus(t, d, "victim", "stopped")
	if v.ExitStatus != 137 {
		t.Errorf("victim exit %d, want 137", v.ExitStatus)
	}
	if got := events(t, d, "/tasks/exit", "victim"); got != 1 {
		t.Errorf("/tasks/exit of victim reported %d times, want 1", got)
	}
	// Another restart reports nothing again and restarts nothing.
	d.Stop()
	d.Restart()
	waitStatus(t, d, "victim", "stopped")
	if got := events(t, d, "/tasks/exit", "victim"); got != 1 {
		t.Errorf("after a second restart, /tasks/exit of victim reported %d times, want 1", got)
	}
	if got := tasks(t, d)["s0"]; got.Pid != before["s0"].Pid || got.Status != "running" {
		t.Errorf("s0 after second restart: %+v", got)
	}
}

func TestRun_ShimKilled(t *testing.T) {
	d := runDaemon(t)
	d.MustCLI(t, "run", "-d", "busybox:latest", "orphan", "sleep", "1000")
	task := waitStatus(t, d, "orphan", "running")
	b, err := os.ReadFile(filepath.Join(d.State, "default", "orphan", "shim.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var shimPid int
	fmt.Sscan(string(b), &shimPid)
	if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, d, "orphan", "stopped")
	harness.Eventually(t, 5*time.Second, func() (bool, string) {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", task.Pid))
		return os.IsNotExist(err), fmt.Sprintf("container process %d still runs after its shim died", task.Pid)
	})
	if got := events(t, d, "/tasks/exit", "orphan"); got != 1 {
		t.Errorf("/tasks/exit of orphan: %d, want 1", got)
	}
	d.MustCLI(t, "task", "rm", "orphan")
	d.MustCLI(t, "container", "rm", "orphan")
	if mounts := harness.MountsUnder(d.State); len(mounts) != 0 {
		t.Errorf("mounts left under state: %v", mounts)
	}
}

// TestRun_RuntimeByName: the OCI runtime is chosen by name. crun 1.8
// refuses this kind of host's hybrid cgroup layout: then the error says so,
// naming crun, and nothing is left behind; where it runs, it runs.
func TestRun_RuntimeByName(t *testing.T) {
	d := runDaemon(t)
	testutil.RequireBinary(t, "crun")
	r := d.CLI("run", "--rm", "--runtime", "crun", "busybox:latest", "crun1", "echo", "from-crun")
	switch {
	case r.ExitCode == 0:
		if !strings.Contains(r.Stdout, "from-crun") {
			t.Errorf("crun ran but printed %q", r.Stdout)
		}
	case !strings.Contains(r.Stderr, "crun create") && !strings.Contains(r.Stderr, "crun run"):
		// run creates and starts in one runtime call (crun run --detach)
		t.Errorf("a crun failure should name crun and what it refused: %s", r)
	}
	if out := d.MustCLI(t, "container", "ls"); strings.Contains(out, "crun1") {
		t.Errorf("run --rm left container crun1 behind:\n%s", out)
	}
	if r := d.CLI("run", "--rm", "--runtime", "no-such-runtime", "busybox:latest", "x1", "true"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "no-such-runtime") {
		t.Errorf("an unknown runtime should be a clear error naming it: %s", r)
	}
}

// TestRun_FreshNamespace: the first write to a namespace that does not
// exist yet (an import) creates it, as containerd does, so `run` works
// there at once and `namespace ls` lists it; a read of an unknown
// namespace creates nothing, and `namespace rm` still refuses a
// namespace that holds an image.
func TestRun_FreshNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	images := testutil.TestImages(t, "busybox")
	d := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "info"})

	if r := d.CLI("-n", "nowhere", "image", "ls"); r.ExitCode == 0 {
		t.Errorf("image ls of an unknown namespace: %s, want NotFound", r)
	}
	d.MustCLI(t, "-n", "fresh", "image", "import", filepath.Join(images, "busybox"))
	if r := d.CLI("-n", "fresh", "run", "--rm", "busybox:latest", "x", "true"); r.ExitCode != 0 {
		t.Fatalf("run in a fresh namespace: %s, want exit 0", r)
	}
	out := d.MustCLI(t, "namespace", "ls")
	if !regexp.MustCompile(`(?m)^fresh\s`).MatchString(out) {
		t.Errorf("namespace ls does not list fresh:\n%s", out)
	}
	if regexp.MustCompile(`(?m)^nowhere\s`).MatchString(out) {
		t.Errorf("a read created namespace nowhere:\n%s", out)
	}
	if r := d.CLI("namespace", "rm", "fresh"); r.ExitCode == 0 || !strings.Contains(r.Stderr, "still holds") {
		t.Errorf("namespace rm of a namespace holding an image: %s, want refused (still holds images)", r)
	}
}
