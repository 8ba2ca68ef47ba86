package native

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

type inode struct{ dev, ino uint64 }

// CopyTree copies the tree at src to dst (which must not exist), preserving
// owner, mode, xattrs, hard links, symlinks, device nodes, fifos and mtimes.
// Symlinks are copied as links and never followed. dst is created by this
// function, so each path it writes is below a directory it made itself.
func CopyTree(ctx context.Context, dst, src string) error {
	c := copier{links: map[inode]string{}, buf: make([]byte, 1<<20)}
	if err := c.copy(ctx, dst, src); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

type copier struct {
	links map[inode]string
	dirs  []dirTimes
	buf   []byte
	// noClone and noCFR remember that the filesystem refused a fast path.
	noClone, noCFR bool
}

type dirTimes struct {
	path string
	ts   []unix.Timespec
}

func (c *copier) copy(ctx context.Context, dst, src string) error {
	if err := c.entry(ctx, dst, src); err != nil {
		return err
	}
	// Directory mtimes last: creating entries inside changes them.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, d.ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) entry(ctx context.Context, dst, src string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	mode := st.Mode & unix.S_IFMT
	if mode != unix.S_IFDIR && st.Nlink > 1 {
		k := inode{st.Dev, st.Ino}
		if first, ok := c.links[k]; ok {
			return os.Link(first, dst)
		}
		c.links[k] = dst
	}
	switch mode {
	case unix.S_IFDIR:
		if err := unix.Mkdir(dst, 0o700); err != nil {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := c.entry(ctx, filepath.Join(dst, e.Name()), filepath.Join(src, e.Name())); err != nil {
				return err
			}
		}
		c.dirs = append(c.dirs, dirTimes{dst, ts})
	case unix.S_IFREG:
		if err := c.file(dst, src, st.Size); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported file type %o", src, mode)
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := copyXattrs(dst, src); err != nil {
		return err
	}
	if mode != unix.S_IFLNK {
		// After chown, which clears setuid/setgid.
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return err
		}
	}
	if mode != unix.S_IFDIR {
		return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return nil
}

func (c *copier) file(dst, src string, size int64) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	if !c.noClone {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			return nil
		}
		c.noClone = true
	}
	copied := int64(0)
	if !c.noCFR {
		for copied < size {
			n, err := unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), nil, int(size-copied), 0)
			if err != nil {
				if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
					c.noCFR = true
					break
				}
				return err
			}
			if n == 0 {
				break
			}
			copied += int64(n)
		}
	}
	if copied < size {
		if _, err := in.Seek(copied, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(struct{ io.Writer }{out}, in, c.buf); err != nil {
			return err
		}
	}
	return nil
}

func copyXattrs(dst, src string) error {
	sz, err := unix.Llistxattr(src, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	names := make([]byte, sz)
	sz, err = unix.Llistxattr(src, names)
	if err != nil {
		return err
	}
	for _, name := range splitNul(names[:sz]) {
		val := make([]byte, 64<<10)
		n, err := unix.Lgetxattr(src, name, val)
		if err != nil {
			return fmt.Errorf("get xattr %s of %s: %w", name, src, err)
		}
		if err := unix.Lsetxattr(dst, name, val[:n], 0); err != nil {
			return fmt.Errorf("set xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
