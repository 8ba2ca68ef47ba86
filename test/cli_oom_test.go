package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/spec"
	"berth.dev/berth/test/harness"
)

// TestCLI_OOMKilledReason: a Task whose process allocates past its
// Container's memory limit is killed by the kernel, and get and describe
// say so: EXIT "137 (OOMKilled)", READY "False (OOMKilled)", oomKilled in
// the status and the reason in the condition's message.
func TestCLI_OOMKilledReason(t *testing.T) {
	d := startDecl(t, "")
	const name = "oom-hog"
	m := imageManifest(t) + fmt.Sprintf(`---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: %[1]s}
spec:
  image: busybox
  command: [sh, -c, 'x=a; while true; do x=$x$x; done']
  resources: {memory: 16Mi}
---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: %[1]s}
spec: {container: %[1]s, restartPolicy: Never}
`, name)
	if r := d.CLIStdin(m, "apply", "-f", "-"); r.ExitCode != 0 {
		t.Fatal(r)
	}
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		o := getObjects(t, d, "tasks")[name]
		c, _ := o.Status.Condition(spec.ConditionReady)
		return c.Reason == "OOMKilled", fmt.Sprintf("task: %+v %+v", o.task(), o.Status.Conditions)
	})
	got := tableWithoutAge(d.MustCLI(t, "get", "tasks", name))
	want := []string{"NAME READY STATE PID RESTARTS EXIT SOURCE", name + " False (OOMKilled) exited - 0 137 (OOMKilled) api"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("get: %q, want %q", got, want)
	}
	out := d.MustCLI(t, "describe", "task", name)
	for _, s := range []string{
		"  oomKilled: true\n",
		"  exitCode: 137\n",
		"killed for exceeding its memory limit (OOMKilled), status 137; restartPolicy Never",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("describe: no %q in\n%s", s, out)
		}
	}
	if !regexp.MustCompile(`\n  Ready +False +OOMKilled `).MatchString(out) {
		t.Errorf("describe: no OOMKilled condition:\n%s", out)
	}
}
