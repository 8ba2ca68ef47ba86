package controller

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHoldNetns: the path a prober dials through names the task's network
// namespace even after the task's process is gone (its pid free for reuse).
func TestHoldNetns(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("sleep: %v", err)
	}
	want, err := os.Stat(netnsOf(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	path, release := holdNetns(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if _, err := os.Stat(netnsOf(cmd.Process.Pid)); err == nil {
		t.Fatalf("%s still there after the process was reaped", netnsOf(cmd.Process.Pid))
	}
	got, err := os.Stat(path)
	if err != nil {
		t.Fatalf("held namespace %s: %v", path, err)
	}
	if !os.SameFile(got, want) {
		t.Errorf("%s is not the process's network namespace", path)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Errorf("%s: not a namespace file (%v, type %#x)", path, err, st.Type)
	}
	release()
}
