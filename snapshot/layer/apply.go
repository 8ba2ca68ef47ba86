package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Limits bound what one layer may hold. Zero fields take the defaults.
type Limits struct {
	MaxPathLen   int // bytes in an entry or link name; default 4096
	MaxXattrSize int // bytes in one xattr value; default 64 KiB
	MaxEntries   int // tar entries; default 1,000,000
	// MaxSize bounds the uncompressed bytes: both the tar stream and the
	// sum of the files' sizes (a sparse entry counts its full size, though
	// its holes take no disk); default 64 GiB.
	MaxSize int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = 4096
	}
	if l.MaxXattrSize <= 0 {
		l.MaxXattrSize = 64 << 10
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 1_000_000
	}
	if l.MaxSize <= 0 {
		l.MaxSize = 64 << 30
	}
	return l
}

// Options configure Apply.
type Options struct {
	// OverlayWhiteouts writes whiteouts as overlayfs does (0/0 character
	// devices, trusted.overlay.opaque=y) for applying into an upperdir;
	// otherwise whited-out paths are deleted.
	OverlayWhiteouts bool
	// Parents are the lower layer directories, nearest first, when root is
	// an overlay upperdir: directories the layer implies but does not list
	// take their owner, mode and mtime from there, and a hard link to a
	// file of a lower layer copies that file up first.
	Parents []string
	// ExpectedDiffID, if set, must equal the sha256 of the uncompressed
	// stream, or Apply fails (and the caller discards the tree).
	ExpectedDiffID digest.Digest
	// NoSync skips the final syncfs(2) of root's filesystem.
	NoSync bool
	Limits Limits
	// AllowDevices creates the block and character devices a layer holds;
	// by default they are skipped and counted in ApplyResult (fifos are
	// always created).
	AllowDevices bool
	// FreeSpace is what Apply leaves free on root's filesystem: it stops
	// with errdefs.ErrResourceExhausted before going under it.
	FreeSpace FreeSpace
}

// ApplyResult is what Apply measured.
type ApplyResult struct {
	DiffID digest.Digest // sha256 of the uncompressed tar
	Size   int64         // uncompressed bytes
	// SkippedDevices counts the device nodes not created (see
	// Options.AllowDevices); SkippedDeviceNames lists the first few.
	SkippedDevices     int
	SkippedDeviceNames []string
	// DroppedXattrs counts the xattrs not applied (see keepXattr).
	DroppedXattrs int
}

// Apply extracts the layer r (gzip, zstd or plain tar) onto the directory
// root. On error, root holds a partial layer that the caller discards.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (ApplyResult, error) {
	opts.Limits = opts.Limits.withDefaults()
	dec, closeDec, err := decompressor(r)
	if err != nil {
		return ApplyResult{}, err
	}
	defer closeDec()
	rootFD, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer: open root %s: %w", root, err)
	}
	a := &applier{
		root:    rootFD,
		opts:    opts,
		buf:     make([]byte, chunkSize),
		written: map[string]struct{}{},
		cacheFD: -1,
	}
	defer a.close()
	if err := a.checkSpace(); err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer: %w", err)
	}
	p := startPipeline(dec, opts.Limits.MaxSize)
	if err := a.run(ctx, tar.NewReader(p)); err != nil {
		p.stop()
		return ApplyResult{}, fmt.Errorf("apply layer: %w", err)
	}
	dgst, size, err := p.finish()
	if err != nil {
		return ApplyResult{}, fmt.Errorf("apply layer: %w", err)
	}
	res := a.res
	res.DiffID, res.Size = dgst, size
	if opts.ExpectedDiffID != "" && opts.ExpectedDiffID != dgst {
		return res, fmt.Errorf("apply layer: diffID mismatch: got %s, want %s: %w", dgst, opts.ExpectedDiffID, errdefs.ErrFailedPrecondition)
	}
	if err := a.fixDirTimes(); err != nil {
		return res, fmt.Errorf("apply layer: %w", err)
	}
	if !opts.NoSync {
		if err := unix.Syncfs(rootFD); err != nil {
			return res, fmt.Errorf("apply layer: syncfs %s: %w", root, err)
		}
	}
	return res, nil
}

func (a *applier) run(ctx context.Context, tr *tar.Reader) error {
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if n >= a.opts.Limits.MaxEntries {
			return fmt.Errorf("layer has more than %d entries: %w", a.opts.Limits.MaxEntries, errdefs.ErrInvalidArgument)
		}
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %q: %w", shorten(hdr.Name), err)
		}
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// cleanName applies the name policy in the package comment: it strips a
// leading "/" or "./" and refuses "..", NUL and overlong names. "" is root.
func (a *applier) cleanName(name string) (string, error) {
	if len(name) > a.opts.Limits.MaxPathLen {
		return "", invalid("name longer than %d bytes", a.opts.Limits.MaxPathLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", invalid("name contains NUL")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", invalid("name has a \"..\" component")
		}
	}
	return strings.TrimPrefix(path.Clean("/"+name), "/"), nil
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	name, err := a.cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the root belongs to the snapshotter
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(dir, base)
	}
	if isDevice(hdr) && !a.opts.AllowDevices {
		a.skipDevice(name, hdr)
		return nil
	}
	if err := checkIDs(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse {
		a.logical += hdr.Size
		if hdr.Size < 0 || a.logical > a.opts.Limits.MaxSize {
			return invalid("files total more than %d bytes (this one declares %d)", a.opts.Limits.MaxSize, hdr.Size)
		}
	}
	xattrs, err := a.xattrs(hdr)
	if err != nil {
		return err
	}
	pfd, err := a.parent(dir, true)
	if err != nil {
		return err
	}
	a.written[name] = struct{}{}
	e := &node{pfd: pfd, base: base, hdr: hdr, xattrs: xattrs}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		return a.file(e, r)
	case tar.TypeDir:
		return a.dir(e, name)
	case tar.TypeSymlink:
		return a.symlink(e)
	case tar.TypeLink:
		return a.hardlink(e)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return a.special(e)
	case tar.TypeXGlobalHeader:
		return nil
	}
	return invalid("unsupported tar entry type %q", hdr.Typeflag)
}

const xattrPrefix = "SCHILY.xattr."

func (a *applier) xattrs(hdr *tar.Header) (map[string]string, error) {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok {
			continue
		}
		if name == "" || len(v) > a.opts.Limits.MaxXattrSize {
			return nil, invalid("xattr %q: empty name or value over %d bytes", name, a.opts.Limits.MaxXattrSize)
		}
		if !keepXattr(name) {
			a.res.DroppedXattrs++
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out, nil
}

func (a *applier) close() {
	a.dropCache()
	for _, fd := range a.lowerFDs {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	unix.Close(a.root)
}

// shorten keeps error messages readable for absurdly long names.
func shorten(name string) string {
	if len(name) > 256 {
		return name[:256] + "…"
	}
	return name
}
