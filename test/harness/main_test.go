package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// stubBin holds stubd (as berthd and berth-shim) and stubcli (as berth),
// built once for the daemon tests.
var stubBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "berth-harness-stub-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildStubs(dir); err != nil {
		fmt.Fprintln(os.Stderr, "build stubs:", err)
		return 1
	}
	stubBin = dir
	return m.Run()
}

func buildStubs(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	for _, b := range []struct{ pkg, out string }{
		{"./testdata/stubd", "berthd"},
		{"./testdata/stubd", "berth-shim"},
		{"./testdata/stubcli", "berth"},
	} {
		cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return nil
}

// stubOptions runs the stubs instead of bin/berthd and bin/berth.
func stubOptions() DaemonOptions {
	return DaemonOptions{
		Berthd: filepath.Join(stubBin, "berthd"),
		Berth:  filepath.Join(stubBin, "berth"),
	}
}
