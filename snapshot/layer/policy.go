package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"strings"

	"berth.dev/berth/internal/units"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// maxID is the largest owner ID a layer may carry: (uid_t)-1 means "leave
// unchanged" to chown(2), so 2^32-1 would silently keep the creator's (root).
const maxID = 1<<32 - 2

// checkIDs refuses owner IDs that do not fit a uid_t/gid_t. Truncating
// 2^40 to 0, or passing 2^32-1 (chown's "no change"), would leave the
// entry owned by root.
func checkIDs(hdr *tar.Header) error {
	if hdr.Uid < 0 || int64(hdr.Uid) > maxID {
		return invalid("uid %d out of range 0..%d", hdr.Uid, int64(maxID))
	}
	if hdr.Gid < 0 || int64(hdr.Gid) > maxID {
		return invalid("gid %d out of range 0..%d", hdr.Gid, int64(maxID))
	}
	return nil
}

// keepXattr says whether an xattr from a layer is applied. Overlayfs reads
// trusted.overlay.* to merge layers (opaque, redirect, metacopy): a layer
// must never steer that, and whiteouts come from the OCI ".wh." files,
// which Apply converts itself. An SELinux label is the host's policy, not
// the image's. What an image legitimately carries is kept: user.*, file
// capabilities and POSIX ACLs. Everything else (trusted.*, other
// security.* such as IMA/EVM signatures, unknown namespaces) is dropped.
func keepXattr(name string) bool {
	switch {
	case strings.HasPrefix(name, "user."):
		return true
	case name == "security.capability",
		name == "system.posix_acl_access",
		name == "system.posix_acl_default":
		return true
	}
	return false
}

// isDevice reports block and character devices; fifos are harmless.
func isDevice(hdr *tar.Header) bool {
	return hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock
}

// maxSkippedNames bounds the names ApplyResult lists for skipped devices.
const maxSkippedNames = 16

func (a *applier) skipDevice(name string, hdr *tar.Header) {
	a.res.SkippedDevices++
	if len(a.res.SkippedDeviceNames) < maxSkippedNames {
		a.res.SkippedDeviceNames = append(a.res.SkippedDeviceNames, fmt.Sprintf("%s (%c %d,%d)", shorten(name), hdr.Typeflag, hdr.Devmajor, hdr.Devminor))
	}
}

// FreeSpace is how much of the snapshot filesystem an unpack must leave
// free. The larger of the two applies; zero values disable it.
type FreeSpace struct {
	Bytes   uint64
	Percent float64 // of the filesystem's size
}

// The free space is checked again after half of what is left above the
// reserve has been written, at most every 32 MiB (one fstatfs per 32 MiB
// costs nothing measurable) and at least every MiB, so writes stop before
// they cross the reserve.
const (
	maxCheckEvery = 32 << 20
	minCheckEvery = 1 << 20
)

// checkSpace refuses to go on once the filesystem under the root has less
// free than the reserve, before it is full.
func (a *applier) checkSpace() error {
	r := a.opts.FreeSpace
	if r.Bytes == 0 && r.Percent <= 0 {
		return nil
	}
	a.sinceCheck = 0
	var st unix.Statfs_t
	if err := unix.Fstatfs(a.root, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	bsize := uint64(st.Bsize)
	free := st.Bavail * bsize
	reserve := max(r.Bytes, uint64(r.Percent/100*float64(st.Blocks*bsize)))
	if free < reserve {
		return fmt.Errorf("snapshot filesystem has %s free, less than the reserve of %s: %w",
			units.Bytes(int64(free)), units.Bytes(int64(reserve)), errdefs.ErrResourceExhausted)
	}
	a.checkEvery = min(maxCheckEvery, max(minCheckEvery, int64(free-reserve)/2))
	return nil
}

// wrote accounts n bytes written and checks the reserve now and then.
func (a *applier) wrote(n int) error {
	a.sinceCheck += int64(n)
	if a.checkEvery > 0 && a.sinceCheck >= a.checkEvery {
		return a.checkSpace()
	}
	return nil
}

// noSpace classes a full disk or quota as ResourceExhausted, so callers can
// say what holds the space.
func noSpace(err error) error {
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrResourceExhausted)
	}
	return err
}
