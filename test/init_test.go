package test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"berth.dev/berth/test/harness"
)

// TestInit_StopWithoutWaiting: a program that ignores SIGTERM as PID 1
// (busybox httpd) stops at once with `init: true` (berth-init forwards the
// signal), and a program that stops on another signal does with
// `stopSignal`, so a changed Container is recreated without waiting the
// stop timeout for SIGKILL. Each old task's exit status says which signal
// ended it: 143 (SIGTERM) or the program's own code, never 137 (SIGKILL).
func TestInit_StopWithoutWaiting(t *testing.T) {
	dir := t.TempDir()
	d := startDecl(t, dir)
	writeAtomic(t, filepath.Join(dir, "image.yaml"), imageManifest(t))
	container := func(name, extra, command, greeting string) string {
		return fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Container
metadata: {name: %s}
spec:
  image: busybox
  command: %s
  env: [{name: GREETING, value: %s}]
%s---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, stopTimeout: 30s}
`, name, command, greeting, extra)
	}
	cases := []struct {
		name, extra, command string
		wantExit             int
	}{
		{"init-httpd", "  init: true\n", `[httpd, -f, -p, "127.0.0.1:0"]`, 143},
		{"stopsignal", "  stopSignal: USR1\n", `[sh, -c, 'trap "exit 7" USR1; while :; do sleep 0.1; done']`, 7},
	}
	for _, tc := range cases {
		writeAtomic(t, filepath.Join(dir, tc.name+".yaml"), container(tc.name, tc.extra, tc.command, "one"))
	}
	pids := map[string]int{}
	for _, tc := range cases {
		pids[tc.name] = waitTask(t, d, tc.name, 0).task().Pid
	}
	if got := runtimeTasks(t, d)["init-httpd"]; got.Pid == 0 {
		t.Fatalf("init-httpd: no task")
	}
	ev := startEvents(t, d, "topic==/tasks/exit")
	changed := time.Now()
	for _, tc := range cases {
		writeAtomic(t, filepath.Join(dir, tc.name+".yaml"), container(tc.name, tc.extra, tc.command, "two"))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var exit struct {
				ID         string `json:"id"`
				ExitStatus int    `json:"exit_status"`
			}
			harness.Eventually(t, 25*time.Second, func() (bool, string) {
				for _, e := range ev.events(t) {
					var x struct {
						ID         string `json:"id"`
						ExitStatus int    `json:"exit_status"`
					}
					if json.Unmarshal(e.Event, &x) == nil && x.ID == tc.name {
						exit = x
						return true, ""
					}
				}
				return false, fmt.Sprintf("no /tasks/exit of %s yet: %+v", tc.name, ev.events(t))
			})
			if exit.ExitStatus != tc.wantExit {
				t.Fatalf("old task exited %d, want %d (137 is SIGKILL after the stop timeout)", exit.ExitStatus, tc.wantExit)
			}
			waitTask(t, d, tc.name, pids[tc.name])
		})
	}
	t.Logf("both containers recreated %.2fs after the change", time.Since(changed).Seconds())
}
