package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/storage"
)

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// Snapshotter is the overlayfs snapshotter.
type Snapshotter struct {
	st *storage.Store
}

// New opens (creating) an overlay snapshotter rooted at root.
func New(root string) (*Snapshotter, error) {
	st, err := storage.Open(root)
	if err != nil {
		return nil, fmt.Errorf("overlay snapshotter: %w", err)
	}
	return &Snapshotter{st: st}, nil
}

// Close closes the metadata database.
func (o *Snapshotter) Close() error { return o.st.Close() }

func (o *Snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	return o.st.Stat(ctx, key)
}

func (o *Snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	return o.st.Update(ctx, info, fieldpaths...)
}

func (o *Snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc) error {
	return o.st.Walk(ctx, fn)
}

// Usage walks the snapshot's own layer directory.
func (o *Snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	sn, err := o.st.Get(ctx, key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	return storage.DiskUsage(ctx, o.fs(sn.ID))
}

func (o *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return o.create(ctx, snapshot.KindActive, key, parent, opts)
}

func (o *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return o.create(ctx, snapshot.KindView, key, parent, opts)
}

func (o *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	sn, err := o.st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if sn.Kind == snapshot.KindCommitted {
		return nil, fmt.Errorf("mounts of %q: committed snapshots are not mounted, view them: %w", key, errdefs.ErrFailedPrecondition)
	}
	return o.mounts(sn), nil
}

// Commit makes the upperdir's data durable (syncfs), then commits it.
func (o *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	sn, err := o.st.Get(ctx, key)
	if err != nil {
		return err
	}
	if err := storage.SyncFS(o.fs(sn.ID)); err != nil {
		return err
	}
	sn, err = o.st.Commit(ctx, name, key, opts)
	if err != nil {
		return err
	}
	// The workdir is only needed while mounted as upper; a leftover is
	// harmless, so a failure here is not an error of Commit.
	_ = os.RemoveAll(filepath.Join(o.st.Dir(sn.ID), "work"))
	return nil
}

func (o *Snapshotter) Remove(ctx context.Context, key string) error {
	return o.st.Remove(ctx, key)
}

func (o *Snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) ([]snapshot.Mount, error) {
	sn, err := o.st.Create(ctx, kind, key, parent, opts, func(dir string, parentIDs []uint64) error {
		fs := filepath.Join(dir, "fs")
		if err := os.Mkdir(fs, 0o755); err != nil {
			return err
		}
		if kind == snapshot.KindActive {
			if err := os.Mkdir(filepath.Join(dir, "work"), 0o711); err != nil {
				return err
			}
		}
		if len(parentIDs) > 0 {
			// The merged root takes the upper's owner and mode: copy the
			// parent's, so the container sees the image's /.
			if fi, err := os.Stat(o.fs(parentIDs[0])); err == nil {
				st := fi.Sys().(*syscall.Stat_t)
				if err := os.Lchown(fs, int(st.Uid), int(st.Gid)); err != nil {
					return err
				}
				if err := os.Chmod(fs, fi.Mode()&os.ModePerm|fi.Mode()&(os.ModeSticky|os.ModeSetgid|os.ModeSetuid)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return o.mounts(sn), nil
}

func (o *Snapshotter) fs(id uint64) string { return filepath.Join(o.st.Dir(id), "fs") }

func (o *Snapshotter) mounts(sn storage.Snapshot) []snapshot.Mount {
	if len(sn.ParentIDs) == 0 {
		opts := []string{"rbind", "rw"}
		if sn.Kind == snapshot.KindView {
			opts = []string{"rbind", "ro"}
		}
		return []snapshot.Mount{{Type: "bind", Source: o.fs(sn.ID), Options: opts}}
	}
	if sn.Kind == snapshot.KindView && len(sn.ParentIDs) == 1 {
		return []snapshot.Mount{{Type: "bind", Source: o.fs(sn.ParentIDs[0]), Options: []string{"rbind", "ro"}}}
	}
	lowers := make([]string, len(sn.ParentIDs))
	for i, id := range sn.ParentIDs {
		lowers[i] = o.fs(id)
	}
	var opts []string
	if sn.Kind == snapshot.KindActive {
		opts = append(opts,
			"workdir="+filepath.Join(o.st.Dir(sn.ID), "work"),
			"upperdir="+o.fs(sn.ID))
	}
	opts = append(opts, "lowerdir="+strings.Join(lowers, ":"))
	return []snapshot.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}
