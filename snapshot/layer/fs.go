package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// applier holds the state of one Apply.
type applier struct {
	root int
	opts Options
	buf  []byte
	// written are the paths this layer created, which an opaque marker in
	// the same layer must not delete.
	written map[string]struct{}
	dirs    []dirTime
	// One cached parent directory: tar entries come grouped by directory.
	cachePath string
	cacheFD   int
	lowerFDs  []int
	res       ApplyResult
	// logical sums the files' declared sizes (Limits.MaxSize).
	logical int64
	// sinceCheck counts bytes written since the last free-space check.
	sinceCheck int64
	checkEvery int64 // 0: no reserve to keep
}

type dirTime struct {
	name string
	ts   []unix.Timespec
}

type node struct {
	pfd    int
	base   string
	hdr    *tar.Header
	xattrs map[string]string
}

const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// openIn opens rel (a clean relative path) under dirfd, confined to it and
// following no symlinks.
func openIn(dirfd int, rel string, flags uint64) (int, error) {
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolveFlags})
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		return fd, err
	}
}

func (a *applier) dropCache() {
	if a.cacheFD >= 0 {
		unix.Close(a.cacheFD)
	}
	a.cacheFD, a.cachePath = -1, ""
}

// parent returns a descriptor (owned by the cache) of directory dir inside
// the root, creating missing directories when create is set.
func (a *applier) parent(dir string, create bool) (int, error) {
	if dir == "" {
		return a.root, nil
	}
	if a.cacheFD >= 0 && a.cachePath == dir {
		return a.cacheFD, nil
	}
	fd, err := openIn(a.root, dir, unix.O_PATH|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) && create {
		fd, err = a.mkdirAll(dir)
	}
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
			return -1, invalid("parent %q is a symlink or not a directory (%v)", dir, err)
		}
		return -1, fmt.Errorf("open parent %q: %w", dir, err)
	}
	a.dropCache()
	a.cacheFD, a.cachePath = fd, dir
	return fd, nil
}

// mkdirAll creates the missing directories of dir one component at a time,
// never following a symlink, with attributes from the parent layers if any.
func (a *applier) mkdirAll(dir string) (int, error) {
	fd, err := unix.Dup(a.root)
	if err != nil {
		return -1, err
	}
	sofar := ""
	for _, c := range strings.Split(dir, "/") {
		sofar = path.Join(sofar, c)
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, c, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				err = a.copyLowerDirAttrs(fd, c, sofar)
			}
			if err == nil {
				next, err = unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// replace removes what is at base so a new entry can take its place.
func (a *applier) replace(pfd int, base string) error {
	// pfd is the root or the cached directory. A removal under the root may
	// delete an ancestor of the cached directory; one inside the cached
	// directory cannot touch it.
	if pfd != a.cacheFD {
		a.dropCache()
	}
	return removeAllAt(pfd, base)
}

// removeAllAt deletes name under dirfd and, for a directory, its contents,
// without following symlinks. A missing name is not an error.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	f.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

func timespecs(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
}

// fdWriter writes to a raw descriptor, with no os.File bookkeeping.
type fdWriter int

func (w fdWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(int(w), b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

// spaceWriter writes file data and checks the free-space reserve as it goes.
type spaceWriter struct {
	fd int
	a  *applier
}

func (w spaceWriter) Write(b []byte) (int, error) {
	n, err := fdWriter(w.fd).Write(b)
	if err != nil {
		return n, noSpace(err)
	}
	return n, w.a.wrote(n)
}

func (a *applier) file(e *node, r io.Reader) error {
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(e.pfd, e.base, flags, 0o600)
	if errors.Is(err, unix.EEXIST) {
		if err := a.replace(e.pfd, e.base); err != nil {
			return err
		}
		fd, err = unix.Openat(e.pfd, e.base, flags, 0o600)
	}
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer unix.Close(fd)
	switch {
	case isSparse(e.hdr):
		if err := a.writeSparse(fd, r, e.hdr.Size); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	case e.hdr.Size > 0:
		if _, err := io.CopyBuffer(spaceWriter{fd, a}, r, a.buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return a.fdMeta(fd, e)
}

// fdMeta sets owner, then mode (chown clears setuid), xattrs and times on
// an open file or directory.
func (a *applier) fdMeta(fd int, e *node) error {
	if err := unix.Fchown(fd, e.hdr.Uid, e.hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, uint32(e.hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range e.xattrs {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	if e.hdr.Typeflag == tar.TypeDir {
		return nil
	}
	if err := unix.UtimesNanoAt(e.pfd, e.base, timespecs(e.hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (a *applier) dir(e *node, name string) error {
	err := unix.Mkdirat(e.pfd, e.base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(e.pfd, e.base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := a.replace(e.pfd, e.base); err != nil {
				return err
			}
			err = unix.Mkdirat(e.pfd, e.base, 0o700)
		} else {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	fd, err := unix.Openat(e.pfd, e.base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	defer unix.Close(fd)
	a.dirs = append(a.dirs, dirTime{name, timespecs(e.hdr)})
	return a.fdMeta(fd, e)
}

// pathMeta sets owner, mode, xattrs and times on a node that cannot be
// opened for writing (symlink, device, fifo).
func (a *applier) pathMeta(e *node) error {
	if err := unix.Fchownat(e.pfd, e.base, e.hdr.Uid, e.hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if e.hdr.Typeflag != tar.TypeSymlink {
		// Just created by mknodat, so not a symlink to follow.
		if err := unix.Fchmodat(e.pfd, e.base, uint32(e.hdr.Mode)&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range e.xattrs {
		// The parent's magic link names the confined directory; the final
		// component is not followed by lsetxattr.
		if err := unix.Lsetxattr(procPath(e.pfd)+"/"+e.base, k, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", k, err)
		}
	}
	if err := unix.UtimesNanoAt(e.pfd, e.base, timespecs(e.hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// retry runs create, and once more after removing what is in the way.
func (a *applier) retry(e *node, create func() error) error {
	err := create()
	if errors.Is(err, unix.EEXIST) {
		if err := a.replace(e.pfd, e.base); err != nil {
			return err
		}
		err = create()
	}
	return err
}

func (a *applier) symlink(e *node) error {
	if len(e.hdr.Linkname) > a.opts.Limits.MaxPathLen {
		return invalid("symlink target longer than %d bytes", a.opts.Limits.MaxPathLen)
	}
	// The target is data: it is stored, never followed here.
	if err := a.retry(e, func() error { return unix.Symlinkat(e.hdr.Linkname, e.pfd, e.base) }); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return a.pathMeta(e)
}

func (a *applier) special(e *node) error {
	mode := uint32(e.hdr.Mode) & 0o7777
	dev := 0
	switch e.hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
		dev = int(unix.Mkdev(uint32(e.hdr.Devmajor), uint32(e.hdr.Devminor)))
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
		dev = int(unix.Mkdev(uint32(e.hdr.Devmajor), uint32(e.hdr.Devminor)))
	default:
		mode |= unix.S_IFIFO
	}
	if err := a.retry(e, func() error { return unix.Mknodat(e.pfd, e.base, mode, dev) }); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return a.pathMeta(e)
}

// hardlink links to a target resolved inside the root (or copied up from a
// parent layer in overlay mode); it never resolves outside.
func (a *applier) hardlink(e *node) error {
	target, err := a.cleanName(e.hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", e.hdr.Linkname, err)
	}
	if target == "" {
		return invalid("hard link to the root")
	}
	tdir, tbase := path.Split(target)
	tdir = strings.TrimSuffix(tdir, "/")
	tfd, err := openIn(a.root, tdir, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		var st unix.Stat_t
		err = unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) && len(a.opts.Parents) > 0 {
			err = a.copyUp(tfd, tbase, target)
		}
		if err == nil {
			err = a.retry(e, func() error { return unix.Linkat(tfd, tbase, e.pfd, e.base, 0) })
		}
		unix.Close(tfd)
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EXDEV) {
			return invalid("hard link target %q not found inside the root (%v)", e.hdr.Linkname, err)
		}
		return fmt.Errorf("hard link to %q: %w", e.hdr.Linkname, err)
	}
	return nil
}

// fixDirTimes sets directory times last: creating entries changed them.
func (a *applier) fixDirTimes() error {
	a.dropCache()
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		fd, err := openIn(a.root, d.name, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) {
			continue // removed by a later entry
		}
		if err != nil {
			return fmt.Errorf("directory %q: %w", d.name, err)
		}
		err = unix.UtimesNanoAt(unix.AT_FDCWD, procPath(fd), d.ts, 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("directory %q: set times: %w", d.name, err)
		}
	}
	return nil
}
