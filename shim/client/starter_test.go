package client_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/shim/client"
)

// starterEnv makes the test binary a stand-in for berthd: it starts a shim,
// creates and starts the task, says "ready" and waits to be killed.
const starterEnv = "BERTH_SHIM_TEST_STARTER"

func runStarter(spec string) int {
	// spec: shim|runcRoot|id|bundle
	f := strings.Split(spec, "|")
	ctx := context.Background()
	c, err := client.Start(ctx, client.Opts{ShimBinary: f[0], ID: f[2], Bundle: f[3], Namespace: "test"})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := c.Create(ctx, &shimapi.CreateRequest{Id: f[2], Bundle: f[3], RuntimeRoot: f[1]}); err != nil {
		fmt.Println("error", err)
		return 1
	}
	if _, err := c.Start(ctx, &shimapi.StartRequest{Id: f[2]}); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return 0
}

func TestShim_SurvivesStarter(t *testing.T) {
	e := setup(t)
	id := "survive"
	b := e.bundle(t, id, []string{"sleep", "60"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), starterEnv+"="+strings.Join([]string{e.shim, e.runcRoot, id, b}, "|"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("starter: %q", line)
	}
	// kill -9 the "berthd": its shim and task must live on.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ctx := context.Background()
	c, err := client.Connect(ctx, b)
	if err != nil {
		t.Fatalf("connect after the starter died: %v", err)
	}
	defer c.Close()
	if ppid := parentOf(c.Pid()); ppid == cmd.Process.Pid {
		t.Errorf("the shim's parent is its dead starter %d", ppid)
	}
	st, err := c.State(ctx, &shimapi.StateRequest{Id: id})
	if err != nil || st.Status != shimapi.Status_RUNNING {
		t.Fatalf("state: got %v %v, want RUNNING", st, err)
	}
	if _, err := c.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if w, err := c.Wait(ctx, &shimapi.WaitRequest{Id: id}); err != nil || w.ExitStatus != 137 {
		t.Errorf("wait: got %v %v, want 137", w, err)
	}
}

func parentOf(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		var state string
		var ppid int
		fmt.Sscanf(s[i+2:], "%s %d", &state, &ppid)
		return ppid
	}
	return 0
}
