package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// debianLayer returns the large-rootfs layer: debootstrap --variant=minbase
// of o.suite, normalized into one tar. The tar (the layer's uncompressed
// bytes) and its gzip are cached in cache, so debootstrap runs once per
// output directory; delete the cache to take newer packages (which gives a
// new digest).
func debianLayer(cache string, o options) (layer, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return layer{}, err
	}
	rawPath := filepath.Join(cache, "debian-"+o.suite+"-minbase.tar")
	raw, err := os.ReadFile(rawPath)
	if os.IsNotExist(err) {
		if raw, err = debootstrap(cache, o); err == nil {
			err = writeFileAtomic(rawPath, raw)
		}
	}
	if err != nil {
		return layer{}, err
	}
	// The gzip is keyed by the tar's digest: it is the slow half of a
	// rebuild and depends on nothing else.
	diffID := digest(raw)
	gzPath := filepath.Join(cache, strings.TrimPrefix(diffID, "sha256:")+".tar.gz")
	if gz, err := os.ReadFile(gzPath); err == nil {
		return layer{gz: gz, diffID: diffID, rawSize: int64(len(raw)), compSize: int64(len(gz))}, nil
	}
	ly, err := gzipLayer(raw)
	if err != nil {
		return layer{}, err
	}
	return ly, writeFileAtomic(gzPath, ly.gz)
}

func debootstrap(cache string, o options) ([]byte, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("debootstrap needs root (ownership, device nodes, chroot)")
	}
	mirror := o.mirror
	if mirror == "" {
		var err error
		if mirror, err = aptMirror("/", o.suite); err != nil {
			return nil, err
		}
	}
	root := filepath.Join(cache, "debootstrap-root")
	if err := removeRoot(root); err != nil {
		return nil, err
	}
	defer removeRoot(root)
	logPath := filepath.Join(cache, "debootstrap.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	fmt.Fprintf(os.Stderr, "mkimage: debootstrap --variant=minbase %s from %s (once; cached in %s)\n", o.suite, mirror, cache)
	cmd := exec.Command("debootstrap", "--variant=minbase", o.suite, root, mirror)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		tail, _ := exec.Command("tail", "-20", logPath).Output()
		return nil, fmt.Errorf("debootstrap from %s: %w (log %s):\n%s", mirror, err, logPath, tail)
	}
	// No device nodes, runtime state or downloaded packages in an image
	// layer, and nothing that differs between two runs on the same day.
	for _, d := range []string{"dev", "proc", "sys", "var/lib/apt/lists", "var/cache/apt/archives"} {
		if err := emptyDir(filepath.Join(root, d)); err != nil {
			return nil, err
		}
	}
	for _, pattern := range []string{"var/cache/apt/*.bin", "etc/machine-id", "var/log/*.log", "var/log/apt/*", "var/log/journal/*",
		"var/cache/ldconfig/aux-cache"} { // ldconfig's aux-cache records inodes and ctimes
		matches, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return nil, err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/hostname"), nil, 0o644); err != nil {
		return nil, err
	}
	if err := fixShadowDates(filepath.Join(root, "etc/shadow"), o.epoch); err != nil {
		return nil, err
	}
	return tarDir(root, o.epoch)
}

// fixShadowDates sets the "last password change" field of every account,
// which pwconv fills with the day debootstrap ran, to the epoch's day: the
// rootfs then depends on the packages alone, not on the date.
func fixShadowDates(path string, epoch time.Time) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("normalize %s: %w", path, err)
	}
	day := strconv.FormatInt(epoch.Unix()/86400, 10)
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[2] != "" {
			f[2] = day
			lines[i] = strings.Join(f, ":")
		}
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o640)
}

// emptyDir removes what dir holds but keeps dir itself (and its mode).
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// tarDir writes the tree at root as a layer tar in walk (lexical) order,
// with every mtime the epoch, numeric owners, hardlinks as links to their
// first path, and xattrs as PAX records.
func tarDir(root string, epoch time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	var rootSt unix.Stat_t
	if err := unix.Lstat(root, &rootSt); err != nil {
		return nil, err
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != rootSt.Dev {
			return fmt.Errorf("%s is a mount point: the rootfs must be one filesystem", rel)
		}
		h := &tar.Header{Name: rel, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid), ModTime: epoch, Format: tar.FormatPAX}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			h.Typeflag, h.Name = tar.TypeDir, rel+"/"
		case unix.S_IFLNK:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Typeflag, h.Linkname = tar.TypeSymlink, to
		case unix.S_IFREG:
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := seen[key]; ok && st.Nlink > 1 {
				h.Typeflag, h.Linkname = tar.TypeLink, first
			} else {
				seen[key] = rel
				h.Typeflag, h.Size = tar.TypeReg, st.Size
			}
		default:
			return fmt.Errorf("%s: unexpected file type %o in the rootfs", rel, st.Mode&unix.S_IFMT)
		}
		x, err := xattrs(p)
		if err != nil {
			return err
		}
		for k, v := range x {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("tar %s: %w", rel, err)
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, bufio.NewReader(f))
			f.Close()
			if err != nil {
				return fmt.Errorf("tar %s: %w", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func xattrs(p string) (map[string]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if err == unix.ENOTSUP {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	var out map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			return nil, fmt.Errorf("xattr %s of %s: %w", name, p, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(val[:m])
	}
	return out, nil
}

func writeFileAtomic(p string, data []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// removeRoot deletes a debootstrap target. debootstrap mounts /proc (and,
// in some containers, binds host /dev nodes) inside it and a failed run can
// leave them mounted: those are unmounted first, and nothing is deleted
// while anything is still mounted below root, so a cleanup never reaches
// the host's /dev or /proc.
func removeRoot(root string) error {
	mounts, err := mountsUnder(root)
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- { // deepest (latest) first
		_ = unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
	if mounts, err = mountsUnder(root); err != nil || len(mounts) > 0 {
		return fmt.Errorf("still mounted under %s, not removing it: %v %v", root, mounts, err)
	}
	return os.RemoveAll(root)
}

// mountsUnder lists the mount points at or below dir, in mount order.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
