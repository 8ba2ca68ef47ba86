package diff

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/layer"
	"berth.dev/berth/snapshot/unpack"
)

// withTree calls fn with a directory holding the tree mounts describe,
// read-only where it has to mount: a bind mount's source as it is, an
// overlay mounted on a temporary directory, no mounts an empty tree ("").
func withTree(mounts []snapshot.Mount, fn func(dir string) error) error {
	if len(mounts) == 0 {
		return fn("")
	}
	if len(mounts) == 1 && mounts[0].Type == "bind" {
		return fn(mounts[0].Source)
	}
	dir, err := os.MkdirTemp("", "berth-diff-")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	ro := make([]snapshot.Mount, len(mounts))
	for i, m := range mounts {
		ro[i] = readOnly(m)
	}
	if err := snapshot.MountAll(ro, dir); err != nil {
		return fmt.Errorf("mount %s: %w", snapshot.ShellCommand(ro, dir), err)
	}
	err = fn(dir)
	if uerr := snapshot.UnmountAll(dir); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

// readOnly turns a mount into one that cannot write: an active overlay
// becomes an overlay of its upperdir over its lowerdirs (an overlay of
// lowerdirs only is read-only, and a second mount must not share the
// first's upperdir and workdir), anything else gains "ro".
func readOnly(m snapshot.Mount) snapshot.Mount {
	if m.Type == "overlay" {
		up, lowers := overlayDirs(m)
		var opts []string
		for _, o := range m.Options {
			k, _, _ := strings.Cut(o, "=")
			if k != "upperdir" && k != "workdir" && k != "lowerdir" {
				opts = append(opts, o)
			}
		}
		if up != "" {
			lowers = append([]string{up}, lowers...)
		}
		if len(lowers) == 1 {
			// overlay needs two lowerdirs without an upper: bind the one.
			return snapshot.Mount{Type: "bind", Source: lowers[0], Options: []string{"rbind", "ro"}}
		}
		m.Options = append(opts, "lowerdir="+strings.Join(lowers, ":"))
		return m
	}
	m.Options = append(append([]string{}, m.Options...), "ro")
	return m
}

// Apply applies the layer r (gzip, zstd or plain tar) onto the tree mounts
// describe, as an unpack does: an overlay's upperdir gets overlay
// whiteouts, anything else has whited-out paths deleted.
func Apply(ctx context.Context, mounts []snapshot.Mount, r io.Reader, opts layer.Options) (layer.ApplyResult, error) {
	return unpack.ApplyMounts(ctx, mounts, r, opts)
}
