package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"berth.dev/berth/spec"
)

// Manifest reports whether a directory entry name is a manifest berth
// reads (spec.IsManifestFile).
func Manifest(name string) bool { return spec.IsManifestFile(name) }

// fileState is what the directory source remembers of one file.
type fileState struct {
	size    int64
	mtime   time.Time
	ctime   time.Time
	ino     uint64
	digest  string // of the content last read, good or not
	good    bool   // the last read parsed
	readAt  time.Time
	objects []spec.Object
}

func sameStat(a *fileState, fi fs.FileInfo) bool {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return false
	}
	return a.size == fi.Size() && a.mtime.Equal(fi.ModTime()) && a.ino == st.Ino &&
		a.ctime.Equal(time.Unix(st.Ctim.Sec, st.Ctim.Nsec))
}

func statOf(fi fs.FileInfo) fileState {
	fs := fileState{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		fs.ino = st.Ino
		fs.ctime = time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fs
}

// errUnsettled means a file is being written: read it again later.
var errUnsettled = errors.New("file is changing")

// readFile reads one manifest through root, which keeps every open
// inside the directory: a symlink that leaves it fails, and its target's
// content is never read nor echoed. prev is the last state, or nil.
func (d *DirSource) readFile(root *os.Root, name, source string, prev *fileState, now time.Time) (*fileState, error) {
	f, err := root.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
			return nil, fmt.Errorf("%s: is a symlink that leaves the directory; not read", source)
		}
		return nil, fmt.Errorf("%s: %w", source, unwrapPath(err))
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, unwrapPath(err))
	}
	if !before.Mode().IsRegular() {
		return nil, errNotRegular
	}
	if before.Size() > d.opts.MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d", source, before.Size(), d.opts.MaxFileSize)
	}
	// Coarse timestamps make an old stat unreliable, hence the two-second
	// margin before a stat match skips the read.
	if prev != nil && sameStat(prev, before) && now.Sub(before.ModTime()) > 2*time.Second {
		return prev, nil
	}
	if !d.whole(name, before, now) {
		return nil, errUnsettled
	}
	data, err := io.ReadAll(io.LimitReader(f, d.opts.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, unwrapPath(err))
	}
	after, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, unwrapPath(err))
	}
	if int64(len(data)) != after.Size() || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		return nil, errUnsettled
	}
	st := statOf(after)
	sum := sha256.Sum256(data)
	st.digest = "sha256:" + hex.EncodeToString(sum[:])
	st.readAt = now
	if prev != nil && prev.digest == st.digest {
		st.good, st.objects = prev.good, prev.objects
		return &st, nil
	}
	objs, err := spec.Load(source, data)
	if err != nil {
		return &st, err
	}
	st.good, st.objects = true, objs
	return &st, nil
}

// whole reports whether name's writer is done: it closed the file after
// writing, or renamed it into place; where neither can be known, once the
// file has been quiet for the settle time. A prefix of YAML is often valid
// YAML (memory: 1 of memory: 1024Mi), so a file still being written must
// not be read, however long its writer pauses between writes, short of
// the settle time.
func (d *DirSource) whole(name string, fi fs.FileInfo, now time.Time) bool {
	quiet := now.Sub(fi.ModTime()) >= d.opts.Settle
	if d.writes == nil {
		return d.placed[name] || quiet
	}
	// writeOpen and writeUnknown alike wait for quiet: an open writer that
	// never closes must not hold its file back forever.
	return d.writes.of(name) == writeDone || quiet
}

var errNotRegular = errors.New("not a regular file")

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// listing is one consistent read of the directory.
type listing struct {
	resolved string
	files    map[string]*fileState // by source name, good or failed
	errs     map[string]error      // by source name
	retry    bool                  // some file was still being written
}

// list reads every manifest of the directory, by way of one resolution
// of the directory path, so a symlink swapped meanwhile yields either
// the old set or the new one.
func (d *DirSource) list(now time.Time) (*listing, error) {
	resolved, err := filepath.EvalSymlinks(d.dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(resolved)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	dirf, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	names, err := dirf.Readdirnames(-1)
	dirf.Close()
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	l := &listing{resolved: resolved, files: map[string]*fileState{}, errs: map[string]error{}}
	for _, name := range names {
		if !Manifest(name) {
			continue
		}
		source := filepath.Join(d.dir, name)
		prev := d.files[source]
		st, err := d.readFile(root, name, source, prev, now)
		switch {
		case errors.Is(err, errNotRegular):
			continue
		case errors.Is(err, errUnsettled):
			l.retry = true
			if prev != nil {
				l.files[source] = prev // keep what is in force; read again soon
			}
			continue
		}
		if st != nil {
			l.files[source] = st
		}
		if err != nil {
			l.errs[source] = err
		}
	}
	return l, nil
}
