package oci

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// knownRuntimes are the runtimes berth may be asked for by name. crun is
// accepted, but crun 1.8 (Debian bookworm's) refuses this machine's cgroup
// v1 hybrid layout (v1 controllers plus /sys/fs/cgroup/unified) when it
// creates a container; berth does not second-guess it: the shim reports
// crun's own error as the task's failure.
var knownRuntimes = map[string]bool{"runc": true, "crun": true}

// Runtime resolves a runtime name ("" meaning spec.DefaultRuntime) to the path
// of its binary with lookPath (exec.LookPath when nil). A name is "runc",
// "crun" or an absolute path to an executable (a wrapper, say); anything
// else is errdefs.ErrInvalidArgument, and a runtime that is not installed
// is errdefs.ErrNotFound with a message that says so.
func Runtime(name string, lookPath func(string) (string, error)) (string, error) {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if name == "" {
		name = spec.DefaultRuntime
	}
	if !knownRuntimes[name] && !(filepath.IsAbs(name) && filepath.Clean(name) == name) {
		return "", fmt.Errorf("runtime %q: want runc, crun or an absolute path: %w", name, errdefs.ErrInvalidArgument)
	}
	p, err := lookPath(name)
	if err != nil {
		if filepath.IsAbs(name) {
			return "", fmt.Errorf("runtime %s: not an executable file (%v): %w", name, err, errdefs.ErrNotFound)
		}
		return "", fmt.Errorf("runtime %s: not found on PATH, install it (apt-get install %s) (%v): %w", name, name, err, errdefs.ErrNotFound)
	}
	return p, nil
}
