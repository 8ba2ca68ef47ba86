// Package testimage is the one description of berth's "layered" test image:
// the layers hack/mkimage writes and the tree the tests expect once they are
// applied in order. Keeping both here means the builder and the check cannot
// drift apart, and the tests need nothing outside the repository.
//
// The image is the busybox layer plus three layers that exercise what layer
// apply must get right: whiteouts of a file and of a directory, an opaque
// directory, a whiteout reaching across a layer, hardlinks, relative,
// absolute and dangling symlinks, setuid and sticky modes, a non-root owner
// and an extended attribute.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Entry is one entry of a layer tar. Mode holds permission and special bits
// (setuid, sticky) in their Unix octal form (04755, 01777).
type Entry struct {
	Path     string
	Type     byte // tar.TypeReg, TypeDir, TypeSymlink or TypeLink
	Mode     int64
	UID, GID int
	Data     string
	Link     string // symlink target, or the path a hardlink names
	Xattrs   map[string]string
}

func dir(p string) Entry        { return Entry{Path: p, Type: tar.TypeDir, Mode: 0o755} }
func file(p, data string) Entry { return Entry{Path: p, Type: tar.TypeReg, Mode: 0o644, Data: data} }
func symlink(p, to string) Entry {
	return Entry{Path: p, Type: tar.TypeSymlink, Mode: 0o777, Link: to}
}

// whiteout hides name of a lower layer; its parent directory is in the same
// layer so the layer applies on its own.
func whiteout(parent, name string) Entry {
	return Entry{Path: parent + "/.wh." + name, Type: tar.TypeReg, Mode: 0o600}
}

const (
	passwdBase = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	groupBase  = "root:x:0:\nnogroup:x:65534:\n"
)

// BusyboxEtc is /etc/passwd and /etc/group of the busybox image.
func BusyboxEtc() []Entry {
	return []Entry{file("etc/passwd", passwdBase), file("etc/group", groupBase)}
}

// LayeredLayers are the three layers the layered image adds on top of the
// busybox layer, in order.
func LayeredLayers() [][]Entry {
	l1 := []Entry{
		dir("data"),
		file("data/keep.txt", "keep\n"),
		file("data/override.txt", "v1\n"),
		file("data/delete-me.txt", "delete me\n"),
		dir("data/gone-dir"), file("data/gone-dir/a.txt", "a\n"),
		dir("data/gone-dir/sub"), file("data/gone-dir/sub/b.txt", "b\n"),
		dir("data/opaque-dir"), file("data/opaque-dir/old-1.txt", "old-1\n"),
		dir("data/opaque-dir/old-sub"), file("data/opaque-dir/old-sub/old-2.txt", "old-2\n"),
		dir("etc"), file("etc/motd", "layer1 motd\n"),
	}
	suid := file("usr/local/bin/suid-sh", "#!/bin/sh\nid\n")
	suid.Mode = 0o4755
	sticky := dir("data/sticky")
	sticky.Mode = 0o1777
	home := dir("home/user")
	home.Mode, home.UID, home.GID = 0o750, 1000, 1000
	owned := file("home/user/owned.txt", "owned by 1000\n")
	owned.Mode, owned.UID, owned.GID = 0o640, 1000, 1000
	l2 := []Entry{
		dir("data"),
		whiteout("data", "delete-me.txt"),
		file("data/override.txt", "v2\n"),
		dir("data/links"),
		file("data/links/hardlink-a", "hardlinked\n"),
		{Path: "data/links/hardlink-b", Type: tar.TypeLink, Link: "data/links/hardlink-a"},
		symlink("data/links/symlink-rel", "../keep.txt"),
		symlink("data/links/symlink-abs", "/data/keep.txt"),
		symlink("data/links/symlink-dangling", "/nonexistent"),
		sticky,
		dir("usr"), dir("usr/local"), dir("usr/local/bin"), suid,
		dir("etc"),
		file("etc/passwd", passwdBase+"user:x:1000:1000:user:/home/user:/bin/sh\n"),
		file("etc/group", groupBase+"user:x:1000:\n"),
		dir("home"), home, owned,
	}
	xattr := file("data/xattr.txt", "xattr\n")
	xattr.Xattrs = map[string]string{"user.testimage": "hello"}
	l3 := []Entry{
		dir("data"),
		whiteout("data", "gone-dir"),
		dir("data/opaque-dir"),
		{Path: "data/opaque-dir/.wh..wh..opq", Type: tar.TypeReg, Mode: 0o600},
		file("data/opaque-dir/new.txt", "new\n"),
		dir("etc"),
		whiteout("etc", "motd"), // removes the layer 1 file across layer 2
		xattr,
	}
	return [][]Entry{l1, l2, l3}
}

// want is one expectation on the applied tree.
type want struct {
	path     string
	kind     os.FileMode // 0 regular, os.ModeDir, os.ModeSymlink
	mode     uint32      // permission and special bits, as in stat's %a
	uid, gid uint32
	data     string // regular files: content; symlinks: target
}

// CheckLayered compares the rootfs at root, where the layered image was
// applied, with the tree its layers describe, and returns one message per
// difference (none when it matches).
func CheckLayered(root string) []string {
	var bad []string
	badf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	for _, w := range []want{
		{path: "/bin/busybox", mode: 0o755},
		{path: "/bin/sh", kind: os.ModeSymlink, data: "/bin/busybox"},
		{path: "/data", kind: os.ModeDir, mode: 0o755},
		{path: "/data/keep.txt", mode: 0o644, data: "keep\n"},
		{path: "/data/override.txt", mode: 0o644, data: "v2\n"},
		{path: "/data/links/hardlink-a", mode: 0o644, data: "hardlinked\n"},
		{path: "/data/links/hardlink-b", mode: 0o644, data: "hardlinked\n"},
		{path: "/data/links/symlink-rel", kind: os.ModeSymlink, data: "../keep.txt"},
		{path: "/data/links/symlink-abs", kind: os.ModeSymlink, data: "/data/keep.txt"},
		{path: "/data/links/symlink-dangling", kind: os.ModeSymlink, data: "/nonexistent"},
		{path: "/data/sticky", kind: os.ModeDir, mode: 0o1777},
		{path: "/data/opaque-dir", kind: os.ModeDir, mode: 0o755},
		{path: "/data/opaque-dir/new.txt", mode: 0o644, data: "new\n"},
		{path: "/data/xattr.txt", mode: 0o644, data: "xattr\n"},
		{path: "/usr/local/bin/suid-sh", mode: 0o4755, data: "#!/bin/sh\nid\n"},
		{path: "/home/user", kind: os.ModeDir, mode: 0o750, uid: 1000, gid: 1000},
		{path: "/home/user/owned.txt", mode: 0o640, uid: 1000, gid: 1000, data: "owned by 1000\n"},
	} {
		if msg := check(root, w); msg != "" {
			badf("%s", msg)
		}
	}
	var a, b unix.Stat_t
	if unix.Lstat(filepath.Join(root, "data/links/hardlink-a"), &a) == nil && unix.Lstat(filepath.Join(root, "data/links/hardlink-b"), &b) == nil &&
		(a.Ino != b.Ino || a.Nlink != 2) {
		badf("/data/links/hardlink-a and -b: inodes %d and %d, link count %d; want one inode, link count 2", a.Ino, b.Ino, a.Nlink)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "data/opaque-dir")); err == nil && (len(ents) != 1 || ents[0].Name() != "new.txt") {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		badf("/data/opaque-dir holds %v, want only new.txt (the opaque marker hides the lower entries)", names)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(root, "data/xattr.txt"), "user.testimage", buf); err != nil || string(buf[:n]) != "hello" {
		badf("/data/xattr.txt: xattr user.testimage = %q (%v), want \"hello\"", buf[:max(n, 0)], err)
	}
	for _, f := range []struct{ path, line string }{{"/etc/passwd", "user:x:1000:1000:"}, {"/etc/group", "user:x:1000:"}} {
		b, err := os.ReadFile(filepath.Join(root, f.path))
		if err != nil || !bytes.Contains(b, []byte("\n"+f.line)) {
			badf("%s lacks a line starting %q (%v)", f.path, f.line, err)
		}
	}
	for _, p := range []string{"/data/delete-me.txt", "/data/gone-dir", "/data/opaque-dir/old-1.txt", "/data/opaque-dir/old-sub", "/etc/motd"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			badf("%s: want it removed by a whiteout, got %v", p, err)
		}
	}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".wh.") {
			badf("whiteout left in the rootfs: %s", strings.TrimPrefix(p, root))
		}
		if d.IsDir() && p != root && isMount(p) {
			return filepath.SkipDir
		}
		return nil
	})
	return bad
}

func check(root string, w want) string {
	p := filepath.Join(root, w.path)
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Sprintf("%s: %v", w.path, err)
	}
	if fi.Mode().Type() != w.kind {
		return fmt.Sprintf("%s: type %v, want %v", w.path, fi.Mode().Type(), w.kind)
	}
	if w.kind == os.ModeSymlink {
		if to, _ := os.Readlink(p); to != w.data {
			return fmt.Sprintf("%s: symlink to %q, want %q", w.path, to, w.data)
		}
		return ""
	}
	st := fi.Sys().(*syscall.Stat_t)
	// st_mode's low 12 bits are the permission, setuid, setgid and sticky
	// bits in the order stat(1) prints them.
	if got := st.Mode & 0o7777; got != w.mode || st.Uid != w.uid || st.Gid != w.gid {
		return fmt.Sprintf("%s: mode %o owner %d:%d, want mode %o owner %d:%d", w.path, got, st.Uid, st.Gid, w.mode, w.uid, w.gid)
	}
	if w.kind == 0 && w.data != "" {
		if b, err := os.ReadFile(p); err != nil || string(b) != w.data {
			return fmt.Sprintf("%s: content %q (%v), want %q", w.path, b, err, w.data)
		}
	}
	return ""
}

// isMount reports whether p is on another filesystem than its parent, so
// the whiteout walk stays on the rootfs (find -xdev).
func isMount(p string) bool {
	var a, b unix.Stat_t
	return unix.Lstat(p, &a) == nil && unix.Lstat(filepath.Dir(p), &b) == nil && a.Dev != b.Dev
}
