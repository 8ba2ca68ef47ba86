package storage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"berth.dev/berth/snapshot"
)

// DiskUsage counts the inodes and bytes (allocated blocks) under dir,
// counting a hard-linked inode once and following no symlinks.
func DiskUsage(ctx context.Context, dir string) (snapshot.Usage, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]struct{}{}
	var u snapshot.Usage
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		k := inode{uint64(st.Dev), st.Ino}
		if _, ok := seen[k]; ok {
			return nil
		}
		seen[k] = struct{}{}
		u.Inodes++
		u.Size += st.Blocks * 512
		return nil
	})
	if err != nil {
		return snapshot.Usage{}, fmt.Errorf("usage of %s: %w", dir, err)
	}
	return u, nil
}

// SyncFS flushes the filesystem holding dir (syncfs(2)): one call makes a
// whole layer durable, where an fsync per file would cost thousands.
func SyncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}
