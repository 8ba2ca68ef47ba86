package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build compiles berth-init once for the tests that run it as a process.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth-init")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func TestInit(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		name     string
		script   string
		signal   syscall.Signal // sent to berth-init once the program says "up"
		wantCode int
	}{
		{"exit code passes through", "echo up; exit 7", 0, 7},
		// The program's own trap runs: the signal reached it.
		{"SIGTERM is forwarded", "trap 'exit 42' TERM; echo up; while :; do sleep 0.05; done", syscall.SIGTERM, 42},
		{"killed by a signal is 128+N", "echo up; exec sleep 100", syscall.SIGTERM, 128 + int(syscall.SIGTERM)},
		{"SIGHUP is forwarded", "trap 'exit 5' HUP; echo up; while :; do sleep 0.05; done", syscall.SIGHUP, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "--", "sh", "-c", tc.script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 3)
			if _, err := out.Read(buf); err != nil || string(buf) != "up\n" {
				t.Fatalf("program did not start: %q %v", buf, err)
			}
			if tc.signal != 0 {
				_ = cmd.Process.Signal(tc.signal)
			}
			err = cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d", code, tc.wantCode)
			}
		})
	}
}

// TestInit_ReapsOrphans: a grandchild whose parent exits is re-parented to
// berth-init and reaped, never left a zombie.
func TestInit_ReapsOrphans(t *testing.T) {
	bin := build(t)
	pidFile := filepath.Join(t.TempDir(), "orphan")
	// The program starts a background sleep that outlives its own
	// subshell, writes its pid, and waits until the test is done looking.
	script := `(sleep 0.2 & echo $! > ` + pidFile + `) ; echo up; sleep 2`
	cmd := exec.Command(bin, "--", "sh", "-c", script)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 3)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return // reaped: gone entirely
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %s not reaped: %s", pid, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInit_Usage(t *testing.T) {
	bin := build(t)
	err := exec.Command(bin).Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("no program: %v, want exit 2", err)
	}
	err = exec.Command(bin, "--", "/nonexistent/prog").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 127 {
		t.Fatalf("missing program: %v, want exit 127", err)
	}
}
