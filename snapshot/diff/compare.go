package diff

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"berth.dev/berth/snapshot"
)

// Compression is how Compare compresses the layer.
type Compression string

const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "none"
)

// ParseCompression reads a compression name ("" is gzip).
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case "", Gzip:
		return Gzip, nil
	case Zstd, Uncompressed:
		return Compression(s), nil
	case "uncompressed":
		return Uncompressed, nil
	}
	return "", fmt.Errorf("compression %q: want gzip, zstd or none: %w", s, errdefs.ErrInvalidArgument)
}

// MediaType is the OCI layer media type of a layer compressed so.
func (c Compression) MediaType() string {
	switch c {
	case Zstd:
		return ocispec.MediaTypeImageLayerZstd
	case Uncompressed:
		return ocispec.MediaTypeImageLayer
	}
	return ocispec.MediaTypeImageLayerGzip
}

// Options configure Compare.
type Options struct {
	Compression Compression // "" is gzip
	// SourceDateEpoch, when set, clamps every mtime in the layer to at most
	// this time, so rebuilding the same changes gives the same digest.
	SourceDateEpoch *time.Time
	// NoFastPath walks both trees even when upper is an overlay over lower
	// (tests use it to check that both ways agree).
	NoFastPath bool
}

// Result describes the layer Compare wrote.
type Result struct {
	Digest    digest.Digest // sha256 of the bytes written (the blob)
	Size      int64         // bytes written
	DiffID    digest.Digest // sha256 of the uncompressed tar
	MediaType string
	// Entries counts the tar entries (whiteouts included); 0 means no change.
	Entries int
	// FastPath says the changes were read from an overlay upperdir.
	FastPath bool
}

// Descriptor is the layer's OCI descriptor.
func (r Result) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size}
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Compare writes to w the layer that turns the tree lower mounts into the
// tree upper mounts (lower may be empty: everything is added).
func Compare(ctx context.Context, lower, upper []snapshot.Mount, w io.Writer, opts Options) (Result, error) {
	if opts.Compression == "" {
		opts.Compression = Gzip
	}
	if len(upper) == 0 {
		return Result{}, fmt.Errorf("compare: no upper mounts: %w", errdefs.ErrInvalidArgument)
	}
	var cs []change
	fast := false
	if up, ok := overlayFastPath(lower, upper); ok && !opts.NoFastPath {
		var err error
		cs, err = overlayChanges(ctx, up)
		switch {
		case err == nil:
			fast = true
		case errors.Is(err, errNeedWalk):
			// redirect_dir or metacopy: the upperdir alone is not the diff.
		default:
			return Result{}, fmt.Errorf("compare: %w", err)
		}
	}
	var res Result
	err := withTree(lower, func(ldir string) error {
		return withTree(upper, func(udir string) error {
			if !fast {
				var err error
				if cs, err = walkChanges(ctx, ldir, udir); err != nil {
					return err
				}
			}
			var err error
			res, err = writeLayer(ctx, cs, w, opts)
			return err
		})
	})
	if err != nil {
		return Result{}, fmt.Errorf("compare: %w", err)
	}
	res.FastPath = fast
	return res, nil
}

// change is one entry of the layer: a path of the upper tree to copy (its
// file is root/rel), or a whiteout.
type change struct {
	rel    string // slash-separated, no leading "/"
	root   string // the upper tree: rel (or, for a whiteout, its parent) is read from there
	delete bool   // ".wh." + base
	opaque bool   // directory: also write dir/.wh..wh..opq
}

var errNeedWalk = errors.New("overlay upperdir uses redirects or metacopy")

// overlayFastPath returns the upperdir when upper is one overlay whose
// lowerdirs are exactly the layers of lower.
func overlayFastPath(lower, upper []snapshot.Mount) (string, bool) {
	if len(upper) != 1 || upper[0].Type != "overlay" {
		return "", false
	}
	up, ulowers := overlayDirs(upper[0])
	if up == "" {
		return "", false
	}
	var llowers []string
	switch {
	case len(lower) == 0:
	case len(lower) == 1 && lower[0].Type == "bind":
		llowers = []string{lower[0].Source}
	case len(lower) == 1 && lower[0].Type == "overlay":
		var lup string
		lup, llowers = overlayDirs(lower[0])
		if lup != "" {
			return "", false // lower is itself an active: its upper is a layer too
		}
	default:
		return "", false
	}
	if !slices.Equal(cleanAll(ulowers), cleanAll(llowers)) {
		return "", false
	}
	return up, true
}

func overlayDirs(m snapshot.Mount) (upper string, lowers []string) {
	for _, o := range m.Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "upperdir":
			upper = v
		case "lowerdir":
			lowers = strings.Split(v, ":")
		}
	}
	return upper, lowers
}

func cleanAll(dirs []string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = filepath.Clean(d)
	}
	return out
}

// overlayChanges reads the changes straight from an overlay upperdir.
func overlayChanges(ctx context.Context, upper string) ([]change, error) {
	var cs []change
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		for _, x := range []string{"trusted.overlay.redirect", "trusted.overlay.metacopy"} {
			if _, err := unix.Lgetxattr(p, x, nil); err == nil {
				return errNeedWalk
			}
		}
		if d.Type()&fs.ModeCharDevice != 0 {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			if st.Rdev == 0 {
				cs = append(cs, change{rel: rel, root: upper, delete: true})
				return nil
			}
		}
		c := change{rel: rel, root: upper}
		if d.IsDir() {
			buf := make([]byte, 4)
			if n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf); err == nil && string(buf[:n]) == "y" {
				c.opaque = true
			}
		}
		cs = append(cs, c)
		return nil
	})
	return cs, err
}

// walkChanges compares the trees ldir and udir ("" for an empty lower).
func walkChanges(ctx context.Context, ldir, udir string) ([]change, error) {
	var cs []change
	err := filepath.WalkDir(udir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(udir, p)
		if err != nil || rel == "." {
			return err
		}
		if ldir != "" {
			same, err := sameEntry(filepath.Join(ldir, rel), p)
			if err != nil {
				return err
			}
			if same {
				return nil
			}
		}
		cs = append(cs, change{rel: filepath.ToSlash(rel), root: udir})
		return nil
	})
	if err != nil || ldir == "" {
		return cs, err
	}
	// Deletions: what lower has and upper lacks. A directory gone is one
	// whiteout; one replaced by a non-directory is replaced by its entry.
	err = filepath.WalkDir(ldir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(ldir, p)
		if err != nil || rel == "." {
			return err
		}
		var st unix.Stat_t
		err = unix.Lstat(filepath.Join(udir, rel), &st)
		switch {
		case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
			cs = append(cs, change{rel: filepath.ToSlash(rel), root: udir, delete: true})
		case err != nil:
			return err
		case d.IsDir() && st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return nil
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	return cs, err
}

// sameEntry reports whether lower path l and upper path u are the same
// entry: type, mode, owner, size, mtime, links, device, link target and
// xattrs (file contents are trusted to mtime and size, as containerd does).
func sameEntry(l, u string) (bool, error) {
	var ls, us unix.Stat_t
	if err := unix.Lstat(l, &ls); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(u, &us); err != nil {
		return false, err
	}
	if ls.Mode != us.Mode || ls.Uid != us.Uid || ls.Gid != us.Gid || ls.Rdev != us.Rdev {
		return false, nil
	}
	isDir := us.Mode&unix.S_IFMT == unix.S_IFDIR
	if !isDir && (ls.Size != us.Size || ls.Nlink != us.Nlink) {
		return false, nil
	}
	if ls.Mtim != us.Mtim {
		return false, nil
	}
	if us.Mode&unix.S_IFMT == unix.S_IFLNK {
		lt, err := os.Readlink(l)
		if err != nil {
			return false, err
		}
		ut, err := os.Readlink(u)
		if err != nil {
			return false, err
		}
		if lt != ut {
			return false, nil
		}
	}
	lx, err := xattrs(l)
	if err != nil {
		return false, err
	}
	ux, err := xattrs(u)
	if err != nil {
		return false, err
	}
	return maps2Equal(lx, ux), nil
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// xattrs lists an entry's extended attributes as a layer carries them:
// overlayfs's own (trusted.overlay.*) and the host's SELinux label are the
// mount's and the host's, not the tree's.
func xattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	if sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	var out map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") || name == "security.selinux" {
			continue
		}
		vsz, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, fmt.Errorf("get xattr %s of %s: %w", name, p, err)
		}
		val := make([]byte, vsz)
		if vsz > 0 {
			if vsz, err = unix.Lgetxattr(p, name, val); err != nil {
				return nil, fmt.Errorf("get xattr %s of %s: %w", name, p, err)
			}
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(val[:vsz])
	}
	return out, nil
}

// pathLess orders paths so that a directory comes before what it holds
// ("a" < "a/b" < "a.b"): compare component by component.
func pathLess(a, b string) int {
	return strings.Compare(strings.ReplaceAll(a, "/", "\x00"), strings.ReplaceAll(b, "/", "\x00"))
}

// writeLayer writes cs as a compressed tar to w.
func writeLayer(ctx context.Context, cs []change, w io.Writer, opts Options) (Result, error) {
	slices.SortStableFunc(cs, func(a, b change) int { return pathLess(a.rel, b.rel) })
	blob := digest.SHA256.Digester()
	cw := &countWriter{w: io.MultiWriter(w, blob.Hash())}
	bw := bufio.NewWriterSize(cw, 1<<20)
	var comp io.WriteCloser
	switch opts.Compression {
	case Gzip:
		comp = gzip.NewWriter(bw)
	case Zstd:
		zw, err := zstd.NewWriter(bw, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return Result{}, err
		}
		comp = zw
	case Uncompressed:
		comp = nopCloser{bw}
	default:
		return Result{}, fmt.Errorf("compression %q: %w", opts.Compression, errdefs.ErrInvalidArgument)
	}
	diffID := digest.SHA256.Digester()
	tw := tar.NewWriter(io.MultiWriter(comp, diffID.Hash()))
	lw := &layerWriter{tw: tw, opts: opts, links: map[inode]string{}, written: map[string]bool{}}
	for i, c := range cs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
		}
		if err := lw.write(c); err != nil {
			return Result{}, fmt.Errorf("%s: %w", c.rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return Result{}, err
	}
	if err := comp.Close(); err != nil {
		return Result{}, err
	}
	if err := bw.Flush(); err != nil {
		return Result{}, err
	}
	return Result{
		Digest: blob.Digest(), Size: cw.n, DiffID: diffID.Digest(),
		MediaType: opts.Compression.MediaType(), Entries: lw.entries,
	}, nil
}

type inode struct{ dev, ino uint64 }

type layerWriter struct {
	tw      *tar.Writer
	opts    Options
	links   map[inode]string // first name written of a multiply-linked file
	written map[string]bool  // directories written (parents are written first)
	entries int
}

func (lw *layerWriter) clamp(t time.Time) time.Time {
	if e := lw.opts.SourceDateEpoch; e != nil && t.After(*e) {
		return *e
	}
	return t
}

// parents writes the directories above rel that are not in the layer yet,
// with the upper tree's metadata, so applying the layer never has to
// invent a directory.
func (lw *layerWriter) parents(rel, root string) error {
	dir := path.Dir(rel)
	if dir == "." || lw.written[dir] {
		return nil
	}
	if err := lw.parents(dir, root); err != nil {
		return err
	}
	return lw.entry(dir, root)
}

func (lw *layerWriter) write(c change) error {
	// Whiteouts take their parent's metadata from the upper tree too; a
	// whiteout's parent always exists there.
	if err := lw.parents(c.rel, c.root); err != nil {
		return err
	}
	if c.delete {
		dir, base := path.Split(c.rel)
		return lw.whiteout(dir + whiteoutPrefix + base)
	}
	if err := lw.entry(c.rel, c.root); err != nil {
		return err
	}
	if c.opaque {
		return lw.whiteout(c.rel + "/" + opaqueMarker)
	}
	return nil
}

func (lw *layerWriter) whiteout(name string) error {
	lw.entries++
	return lw.tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg, Name: name, Mode: 0o600,
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	})
}

// entry writes root/rel.
func (lw *layerWriter) entry(rel, root string) error {
	if root == "" || lw.written[rel] {
		return nil
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: lw.clamp(time.Unix(st.Mtim.Unix()).UTC()),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		lw.written[rel] = true
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		if st.Nlink > 1 {
			id := inode{uint64(st.Dev), st.Ino}
			if first, ok := lw.links[id]; ok {
				hdr.Typeflag, hdr.Size, hdr.Linkname = tar.TypeLink, 0, first
			} else {
				lw.links[id] = rel
			}
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets are not layer content
	}
	xs, err := xattrs(p)
	if err != nil {
		return err
	}
	for k, v := range xs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = v
	}
	lw.entries++
	if err := lw.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// A file written while it is read (a running container) is cut to
	// the size its header announced; one that shrank is an error.
	if n, err := io.CopyN(lw.tw, f, hdr.Size); err != nil {
		return fmt.Errorf("read %d of %d bytes (changed while read?): %w", n, hdr.Size, err)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
