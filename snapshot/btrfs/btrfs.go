package btrfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/storage"
)

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// Snapshotter is the btrfs snapshotter.
type Snapshotter struct {
	st *storage.Store
}

// Supported reports whether dir (or its nearest existing ancestor) is on a
// btrfs filesystem: where berthd picks btrfs as its default snapshotter.
func Supported(dir string) bool {
	for {
		ok, err := onBtrfs(dir)
		if err == nil {
			return ok
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, os.ErrNotExist) || parent == dir {
			return false
		}
		dir = parent
	}
}

// New opens (creating) a btrfs snapshotter rooted at root, which must be
// on a btrfs filesystem.
func New(root string) (*Snapshotter, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("btrfs snapshotter: %w", err)
	}
	ok, err := onBtrfs(root)
	if err != nil {
		return nil, fmt.Errorf("btrfs snapshotter: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("btrfs snapshotter: %s is not on a btrfs filesystem (use overlayfs or native, or put the root on btrfs): %w", root, errdefs.ErrNotImplemented)
	}
	st, err := storage.OpenWith(root, storage.Options{RemoveAll: removeAll})
	if err != nil {
		return nil, fmt.Errorf("btrfs snapshotter: %w", err)
	}
	b := &Snapshotter{st: st}
	if err := b.repairActives(context.Background()); err != nil {
		st.Close()
		return nil, err
	}
	return b, nil
}

// repairActives makes writable again an active whose Commit set the
// read-only flag and then did not commit (a crash, a name taken).
func (b *Snapshotter) repairActives(ctx context.Context) error {
	return b.st.Walk(ctx, func(ctx context.Context, info snapshot.Info) error {
		if info.Kind != snapshot.KindActive {
			return nil
		}
		sn, err := b.st.Get(ctx, info.Name)
		if err != nil {
			return err
		}
		if ro, err := isReadonly(b.fs(sn.ID)); err == nil && ro {
			slog.Warn("btrfs snapshotter: making an active snapshot writable again (its commit did not finish)", "key", info.Name)
			return setReadonly(b.fs(sn.ID), false)
		}
		return nil
	})
}

// Close closes the metadata database.
func (b *Snapshotter) Close() error { return b.st.Close() }

func (b *Snapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	return b.st.Stat(ctx, key)
}

func (b *Snapshotter) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	return b.st.Update(ctx, info, fieldpaths...)
}

func (b *Snapshotter) Walk(ctx context.Context, fn snapshot.WalkFunc) error {
	return b.st.Walk(ctx, fn)
}

// Usage is exact when quotas are enabled: the bytes only this snapshot's
// subvolume holds (btrfs qgroup "exclusive": what it changed from its
// parent), and the inodes of its tree. A committed snapshot's is measured
// when it is committed, before children share its extents (then nothing is
// exclusive to it any more), and kept beside its tree. Without quotas, a
// walk of the tree, as native does.
func (b *Snapshotter) Usage(ctx context.Context, key string) (snapshot.Usage, error) {
	sn, err := b.st.Get(ctx, key)
	if err != nil {
		return snapshot.Usage{}, err
	}
	fs := b.fs(sn.ID)
	u, err := storage.DiskUsage(ctx, fs)
	if err != nil {
		return u, err
	}
	if sn.Kind == snapshot.KindCommitted {
		if data, err := os.ReadFile(b.usageFile(sn.ID)); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil {
				u.Size = n
			}
			return u, nil
		}
	}
	excl, err := b.exclusive(fs)
	if errors.Is(err, errNoQuota) {
		return u, nil
	}
	if err != nil {
		return u, fmt.Errorf("usage of %q: %w", key, err)
	}
	u.Size = excl
	return u, nil
}

// exclusive reads the qgroup's exclusive bytes of the subvolume at fs.
func (b *Snapshotter) exclusive(fs string) (int64, error) {
	id, err := subvolID(fs)
	if err != nil {
		return 0, err
	}
	// Qgroup counters are updated when a transaction commits.
	if err := storage.SyncFS(fs); err != nil {
		return 0, err
	}
	excl, err := qgroupExclusive(fs, id)
	return int64(excl), err
}

// usageFile keeps a committed snapshot's exclusive bytes (quotas only).
func (b *Snapshotter) usageFile(id uint64) string { return filepath.Join(b.st.Dir(id), "usage") }

func (b *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return b.create(ctx, snapshot.KindActive, key, parent, opts)
}

func (b *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshot.Opt) ([]snapshot.Mount, error) {
	return b.create(ctx, snapshot.KindView, key, parent, opts)
}

func (b *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshot.Mount, error) {
	sn, err := b.st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if sn.Kind == snapshot.KindCommitted {
		return nil, fmt.Errorf("mounts of %q: committed snapshots are not mounted, view them: %w", key, errdefs.ErrFailedPrecondition)
	}
	return b.mounts(sn), nil
}

// Commit syncs the active's subvolume, makes it read-only and commits it.
func (b *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	sn, err := b.st.Get(ctx, key)
	if err != nil {
		return err
	}
	if sn.Kind != snapshot.KindActive {
		return fmt.Errorf("commit %q: not an active snapshot: %w", key, errdefs.ErrFailedPrecondition)
	}
	fs := b.fs(sn.ID)
	if err := storage.SyncFS(fs); err != nil {
		return err
	}
	// Measured now, while nothing shares the layer's extents. A usage file
	// a crash leaves on an active is overwritten at its next commit.
	if excl, err := b.exclusive(fs); err == nil {
		if err := os.WriteFile(b.usageFile(sn.ID), []byte(strconv.FormatInt(excl, 10)+"\n"), 0o600); err != nil {
			return fmt.Errorf("commit %q: record usage: %w", key, err)
		}
	} else if !errors.Is(err, errNoQuota) {
		return fmt.Errorf("commit %q: usage: %w", key, err)
	}
	if err := setReadonly(fs, true); err != nil {
		return fmt.Errorf("commit %q: %w", key, err)
	}
	if _, err := b.st.Commit(ctx, name, key, opts); err != nil {
		if rerr := setReadonly(fs, false); rerr != nil {
			slog.Warn("btrfs snapshotter: make active writable again after a failed commit", "key", key, "err", rerr)
		}
		return err
	}
	return nil
}

func (b *Snapshotter) Remove(ctx context.Context, key string) error {
	return b.st.Remove(ctx, key)
}

func (b *Snapshotter) create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt) ([]snapshot.Mount, error) {
	sn, err := b.st.Create(ctx, kind, key, parent, opts, func(dir string, parentIDs []uint64) error {
		fs := filepath.Join(dir, "fs")
		readonly := kind == snapshot.KindView
		if len(parentIDs) == 0 {
			if err := subvolCreate(fs); err != nil {
				return err
			}
			if readonly {
				return setReadonly(fs, true)
			}
			return nil
		}
		// A snapshot of a read-only subvolume is writable unless asked.
		return snapshotCreate(b.fs(parentIDs[0]), fs, readonly)
	})
	if err != nil {
		if errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EOPNOTSUPP) {
			return nil, fmt.Errorf("%w: %w", err, errdefs.ErrNotImplemented)
		}
		return nil, err
	}
	return b.mounts(sn), nil
}

func (b *Snapshotter) fs(id uint64) string { return filepath.Join(b.st.Dir(id), "fs") }

func (b *Snapshotter) mounts(sn storage.Snapshot) []snapshot.Mount {
	opts := []string{"rbind", "rw"}
	if sn.Kind == snapshot.KindView {
		opts = []string{"rbind", "ro"}
	}
	return []snapshot.Mount{{Type: "bind", Source: b.fs(sn.ID), Options: opts}}
}
