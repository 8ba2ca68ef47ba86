// Package snapshot defines the Snapshotter interface and layer application.
//
// A snapshot is a directory tree a container or an unpack works in. Committed
// snapshots are immutable and form chains through their parents; active
// snapshots are writable; views are read-only actives. Keys are caller-chosen
// strings; committed layer snapshots of images are named by their chain ID
// (sha256:…), so a layer shared by many images and namespaces is stored once.
//
// Unpacking an image of layers L1, L2:
//
//	mounts, _ := sn.Prepare(ctx, "extract-1", "")          // active, no parent
//	apply L1 onto mounts; verify diffID; fsync
//	sn.Commit(ctx, chainID(L1), "extract-1")               // active → committed
//	mounts, _ = sn.Prepare(ctx, "extract-2", chainID(L1))
//	apply L2; sn.Commit(ctx, chainID(L1,L2), "extract-2")
//
// Running a container on that image:
//
//	mounts, _ := sn.Prepare(ctx, "default/web", chainID(L1,L2)) // its rw layer
//	… mount, run, unmount …
//	sn.Remove(ctx, "default/web")
//
// A committed snapshot with children, or a key in use, cannot be removed
// (errdefs.ErrFailedPrecondition). Prepare of an existing key is
// errdefs.ErrAlreadyExists; Commit to an existing name likewise. A crash
// between Prepare and Commit leaves an active snapshot that the owner
// removes on restart (extract keys are never committed blindly).
package snapshot

import (
	"context"
	"strings"
	"time"
)

// Kind is the kind of a snapshot.
type Kind int

const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindView:
		return "View"
	case KindActive:
		return "Active"
	case KindCommitted:
		return "Committed"
	}
	return "Unknown"
}

// Info describes a snapshot.
type Info struct {
	Kind    Kind
	Name    string
	Parent  string
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Usage is the disk space a snapshot's own layer takes.
type Usage struct {
	Inodes int64
	Size   int64
}

// Mount is a mount to perform, in the form mount(8) takes it.
type Mount struct {
	Type    string
	Source  string
	Target  string // relative target inside the mount point; usually empty
	Options []string
}

// Snapshotter manages snapshots. Implementations: overlayfs, native, btrfs.
type Snapshotter interface {
	Stat(ctx context.Context, key string) (Info, error)
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	Usage(ctx context.Context, key string) (Usage, error)
	Mounts(ctx context.Context, key string) ([]Mount, error)
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	Remove(ctx context.Context, key string) error
	Walk(ctx context.Context, fn WalkFunc) error
	Close() error
}

// WalkFunc is called for each snapshot.
type WalkFunc func(context.Context, Info) error

// Opt configures a snapshot at Prepare, View or Commit.
type Opt func(*Info) error

// WithLabels sets labels.
func WithLabels(labels map[string]string) Opt {
	return func(i *Info) error {
		if i.Labels == nil {
			i.Labels = map[string]string{}
		}
		for k, v := range labels {
			i.Labels[k] = v
		}
		return nil
	}
}

// ImageFiles says how to read the parent's files of a snapshot just
// prepared (its upper layer still empty) without mounting it writable:
// in place from dir when one directory holds them (a bind mount, or an
// overlay with a single lower layer), else through ro, a read-only
// lowerdir-only overlay. ok is false for any other shape of mounts; the
// caller then mounts them as they are. Reading in place costs no mount
// and, above all, no unmount: unmounting a writable overlay syncs the
// whole upper filesystem.
func ImageFiles(mounts []Mount) (dir string, ro []Mount, ok bool) {
	if len(mounts) != 1 || mounts[0].Target != "" {
		return "", nil, false
	}
	m := mounts[0]
	switch m.Type {
	case "bind":
		return m.Source, nil, m.Source != ""
	case "overlay":
		var lower string
		for _, o := range m.Options {
			if v, found := strings.CutPrefix(o, "lowerdir="); found {
				lower = v
			}
		}
		if lower == "" {
			return "", nil, false
		}
		if !strings.Contains(lower, ":") {
			return lower, nil, true
		}
		return "", []Mount{{Type: "overlay", Source: m.Source, Options: []string{"ro", "lowerdir=" + lower}}}, true
	}
	return "", nil, false
}
