package layer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

func (a *applier) whiteout(dir, base string) error {
	if base == whiteoutOpaque {
		if a.opts.OverlayWhiteouts {
			if _, err := a.parent(dir, true); err != nil {
				return err
			}
			fd, err := openIn(a.root, dir, unix.O_RDONLY|unix.O_DIRECTORY)
			if err != nil {
				return fmt.Errorf("opaque dir: %w", err)
			}
			defer unix.Close(fd)
			if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
				return fmt.Errorf("opaque dir: set %s: %w", opaqueXattr, err)
			}
			return nil
		}
		return a.opaque(dir)
	}
	if len(base) >= len(whiteoutMeta) && base[:len(whiteoutMeta)] == whiteoutMeta {
		return nil // other aufs metadata (.wh..wh.plnk, …) means nothing here
	}
	name := base[len(whiteoutPrefix):]
	if name == "" || name == "." || name == ".." {
		return invalid("whiteout of %q", name)
	}
	if !a.opts.OverlayWhiteouts {
		pfd, err := a.parent(dir, false)
		if errors.Is(err, unix.ENOENT) {
			return nil // nothing to delete
		}
		if err != nil {
			return err
		}
		return a.replace(pfd, name)
	}
	pfd, err := a.parent(dir, true)
	if err != nil {
		return err
	}
	if err := a.replace(pfd, name); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout: mknod: %w", err)
	}
	return unix.Fchownat(pfd, name, 0, 0, unix.AT_SYMLINK_NOFOLLOW)
}

// opaque deletes what dir holds from lower layers, keeping what this layer
// wrote (an opaque marker hides the layers below, not its own).
func (a *applier) opaque(dir string) error {
	a.dropCache()
	fd, err := openIn(a.root, dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opaque dir: %w", err)
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("opaque dir: %w", err)
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if _, ok := a.written[p]; ok {
			var st unix.Stat_t
			if unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				if err := a.opaque(p); err != nil {
					return err
				}
			}
			continue
		}
		if err := removeAllAt(fd, n); err != nil {
			return fmt.Errorf("opaque dir: %w", err)
		}
	}
	return nil
}

// lower returns a descriptor of parent layer i, opened on first use.
func (a *applier) lower(i int) (int, error) {
	for len(a.lowerFDs) < len(a.opts.Parents) {
		a.lowerFDs = append(a.lowerFDs, -1)
	}
	if a.lowerFDs[i] < 0 {
		fd, err := unix.Open(a.opts.Parents[i], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("open parent layer %s: %w", a.opts.Parents[i], err)
		}
		a.lowerFDs[i] = fd
	}
	return a.lowerFDs[i], nil
}

// findLower opens rel in the nearest parent layer holding it. A whiteout
// there means it is gone. The caller closes the descriptor.
func (a *applier) findLower(rel string, flags uint64) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	for i := range a.opts.Parents {
		lfd, err := a.lower(i)
		if err != nil {
			return -1, st, err
		}
		fd, err := openIn(lfd, rel, flags)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return -1, st, err
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, st, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			unix.Close(fd)
			return -1, st, unix.ENOENT
		}
		return fd, st, nil
	}
	return -1, st, unix.ENOENT
}

// copyLowerDirAttrs gives a directory the layer implied (name under fd,
// rel from the root) the owner, mode and times it has in a parent layer, so
// the upperdir does not mask them with 0755 root.
//
// A symlink or file there in a parent layer is refused, as in the root: the
// layer would silently replace it with a directory.
func (a *applier) copyLowerDirAttrs(fd int, name, rel string) error {
	if len(a.opts.Parents) == 0 {
		return nil
	}
	lfd, st, err := a.findLower(rel, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err // ELOOP: a symlink in the parent layers
	}
	unix.Close(lfd)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.ENOTDIR
	}
	_ = unix.Fchownat(fd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
	_ = unix.Fchmodat(fd, name, st.Mode&0o7777, 0)
	a.dirs = append(a.dirs, dirTime{rel, []unix.Timespec{st.Atim, st.Mtim}})
	return nil
}

// copyUp copies regular file target from the nearest parent layer into the
// root (at tbase under tfd), so a hard link in this layer can point at it.
func (a *applier) copyUp(tfd int, tbase, target string) error {
	src, st, err := a.findLower(target, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("copy up %q: not a regular file", target)
	}
	dst, err := unix.Openat(tfd, tbase, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	defer unix.Close(dst)
	in := os.NewFile(uintptr(dupOrNeg(src)), target)
	defer in.Close()
	if _, err := io.CopyBuffer(fdWriter(dst), in, a.buf); err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	if err := copyFdXattrs(dst, src); err != nil {
		return fmt.Errorf("copy up %q: %w", target, err)
	}
	return unix.UtimesNanoAt(tfd, tbase, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}

// dupOrNeg duplicates fd so an os.File may own (and close) the copy.
func dupOrNeg(fd int) int {
	d, err := unix.Dup(fd)
	if err != nil {
		return -1
	}
	return d
}

func copyFdXattrs(dst, src int) error {
	buf := make([]byte, 64<<10)
	n, err := unix.Flistxattr(src, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	names := buf[:n]
	start := 0
	for i, c := range names {
		if c != 0 {
			continue
		}
		name := string(names[start:i])
		start = i + 1
		val := make([]byte, 64<<10)
		m, err := unix.Fgetxattr(src, name, val)
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(dst, name, val[:m], 0); err != nil {
			return err
		}
	}
	return nil
}
