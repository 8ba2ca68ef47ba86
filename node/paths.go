package node

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"berth.dev/berth/oci"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// Where a container's files live, and which runtime binary runs it. Every
// name that becomes a path element is checked here, in one place.

// bundleDir is the bundle of container id of ns. Both names become path
// elements, so anything but DNS-1123 labels ("..", "a/b") is refused.
func (n *Node) bundleDir(ns, id string) (string, error) {
	if err := validatePathNames(ns, id); err != nil {
		return "", err
	}
	return filepath.Join(n.opts.Tasks.State, ns, id), nil
}

func (n *Node) runtimeRoot(ns string) string {
	return filepath.Join(n.opts.Tasks.State, ".runc", ns)
}

// LogPath is where the output log of container id of ns is written; names
// that are not DNS-1123 labels are refused (InvalidArgument), so no
// namespace or id can lead the path outside the root.
func (n *Node) LogPath(ns, id string) (string, error) {
	if err := validatePathNames(ns, id); err != nil {
		return "", err
	}
	return filepath.Join(n.opts.Tasks.Root, "logs", ns, id, "output.log"), nil
}

func validatePathNames(ns, id string) error {
	if err := spec.ValidateNamespace(ns); err != nil {
		return err
	}
	return spec.ValidateName("container id", id)
}

// runtimeBinary resolves a runtime name to its binary's path.
func (n *Node) runtimeBinary(name string) (string, error) {
	if name == "" {
		name = n.opts.Tasks.DefaultRuntime
	}
	if name == "" {
		name = spec.DefaultRuntime
	}
	if bin, ok := n.opts.Tasks.Runtimes[name]; ok && bin != "" {
		if filepath.IsAbs(bin) {
			return oci.Runtime(bin, nil)
		}
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("runtime %s (%s): not found on PATH: %w", name, bin, errdefs.ErrNotFound)
		}
		return p, nil
	}
	return oci.Runtime(name, nil)
}
