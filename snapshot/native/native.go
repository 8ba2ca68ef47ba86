package native

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/storage"
)

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// Snapshotter is the copy-based snapshotter.
type Snapshotter struct {
	st *storage.Store
}

// New opens (creating) a native snapshotter rooted at root.
func New(root string) (*Snapshotter, error) {
	st, err := storage.Open(root)
	if err != nil {
		return nil, fmt.Errorf("native snapshotter: %w", err)
	}
	return &Snapshotter{st: st}, nil
}

// Close closes the metadata database.
func (n *Snapshotter) Close() error { return n.st.Close() }

func (n *Snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	return n.st.Stat(ctx, key)
}

func (n *Snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	return n.st.Update(ctx, info, fieldpaths...)
}

func (n *Snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc) error {
	return n.st.Walk(ctx, fn)
}

// Usage walks the snapshot's whole tree: a native snapshot holds a full copy.
func (n *Snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	sn, err := n.st.Get(ctx, key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	return storage.DiskUsage(ctx, n.fs(sn.ID))
}

func (n *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return n.create(ctx, snapshot.KindActive, key, parent, opts)
}

func (n *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return n.create(ctx, snapshot.KindView, key, parent, opts)
}

func (n *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	sn, err := n.st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if sn.Kind == snapshot.KindCommitted {
		return nil, fmt.Errorf("mounts of %q: committed snapshots are not mounted, view them: %w", key, errdefs.ErrFailedPrecondition)
	}
	return n.mounts(sn), nil
}

// Commit makes the active's data durable (syncfs), then commits it.
func (n *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	sn, err := n.st.Get(ctx, key)
	if err != nil {
		return err
	}
	if err := storage.SyncFS(n.fs(sn.ID)); err != nil {
		return err
	}
	_, err = n.st.Commit(ctx, name, key, opts)
	return err
}

func (n *Snapshotter) Remove(ctx context.Context, key string) error {
	return n.st.Remove(ctx, key)
}

func (n *Snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) ([]snapshot.Mount, error) {
	sn, err := n.st.Create(ctx, kind, key, parent, opts, func(dir string, parentIDs []uint64) error {
		fs := filepath.Join(dir, "fs")
		if len(parentIDs) == 0 {
			return os.Mkdir(fs, 0o755)
		}
		// Committed snapshots are never written, so copying without a
		// lock sees a stable tree.
		if err := CopyTree(ctx, fs, n.fs(parentIDs[0])); err != nil {
			return err
		}
		// A view is never committed, so its copy must be durable now; an
		// active's data is synced when it is committed.
		if kind == snapshot.KindView {
			return storage.SyncFS(fs)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return n.mounts(sn), nil
}

func (n *Snapshotter) fs(id uint64) string { return filepath.Join(n.st.Dir(id), "fs") }

func (n *Snapshotter) mounts(sn storage.Snapshot) []snapshot.Mount {
	opts := []string{"rbind", "rw"}
	if sn.Kind == snapshot.KindView {
		opts = []string{"rbind", "ro"}
	}
	return []snapshot.Mount{{Type: "bind", Source: n.fs(sn.ID), Options: opts}}
}
