package oci

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/containerd/errdefs"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// maxRootFile bounds what berth reads of a file inside an image
// (/etc/passwd, /etc/group): the image is untrusted and may hold anything.
const maxRootFile = 1 << 20

// readRootFile reads name inside rootfs as the container would see it:
// every symlink on the way, absolute or relative, resolves inside rootfs
// (RESOLVE_IN_ROOT), so a link to the host's /etc/shadow reads the image's
// own /etc/shadow, or nothing. The file is opened O_PATH first and checked
// to be a regular file of at most maxRootFile bytes before it is reopened
// for reading through its descriptor (the same inode, no second lookup),
// so a FIFO, a socket or a device is refused without being opened: opening
// a FIFO for reading blocks until a writer comes, and a hostile image must
// not be able to hang berth that way. A missing file is errdefs.ErrNotFound.
func readRootFile(rootfs, name string) ([]byte, error) {
	h, err := pathrs.OpenInRoot(rootfs, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s in rootfs: %w", name, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("open %s in rootfs: %w", name, err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s in rootfs: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s in rootfs is not a regular file (mode %#o): %w", name, st.Mode&unix.S_IFMT, errdefs.ErrInvalidArgument)
	}
	if st.Size > maxRootFile {
		return nil, fmt.Errorf("%s in rootfs: %d bytes, limit %d: %w", name, st.Size, maxRootFile, errdefs.ErrInvalidArgument)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("reopen %s in rootfs: %w", name, err)
	}
	defer f.Close()
	// The size was checked, but the file may grow while it is read.
	data, err := io.ReadAll(io.LimitReader(f, maxRootFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s in rootfs: %w", name, err)
	}
	if len(data) > maxRootFile {
		return nil, fmt.Errorf("%s in rootfs: over %d bytes: %w", name, maxRootFile, errdefs.ErrInvalidArgument)
	}
	return data, nil
}
