package btrfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs ioctls used here, from linux/btrfs.h. They are called directly
// (no btrfs-progs at run time, no cgo).
const (
	ioctlMagic       = 0x94
	volNameMax       = 4087 // BTRFS_PATH_NAME_MAX
	subvolNameMax    = 4039 // BTRFS_SUBVOL_NAME_MAX
	subvolRdonly     = 1 << 1
	firstFreeObjID   = 256 // BTRFS_FIRST_FREE_OBJECTID: a subvolume's root dir
	quotaTreeID      = 8   // BTRFS_QUOTA_TREE_OBJECTID
	qgroupInfoKey    = 242 // BTRFS_QGROUP_INFO_KEY
	searchArgsKeyLen = 104
	searchBufSize    = 4096 - searchArgsKeyLen
	btrfsSuperMagic  = 0x9123683E
)

func iow(nr, size uintptr) uintptr  { return 1<<30 | size<<16 | ioctlMagic<<8 | nr }
func iowr(nr, size uintptr) uintptr { return 3<<30 | size<<16 | ioctlMagic<<8 | nr }

// struct btrfs_ioctl_vol_args
type volArgs struct {
	fd   int64
	name [volNameMax + 1]byte
}

// struct btrfs_ioctl_vol_args_v2
type volArgsV2 struct {
	fd      int64
	transid uint64
	flags   uint64
	unused  [4]uint64
	name    [subvolNameMax + 1]byte
}

// struct btrfs_ioctl_ino_lookup_args
type inoLookupArgs struct {
	treeid   uint64
	objectid uint64
	name     [4080]byte
}

// struct btrfs_ioctl_search_args: the key (struct btrfs_ioctl_search_key)
// and the result buffer.
type searchArgs struct {
	treeID, minObjectID, maxObjectID, minOffset, maxOffset, minTransID, maxTransID uint64
	minType, maxType, nrItems, unused                                              uint32
	unused1, unused2, unused3, unused4                                             uint64
	buf                                                                            [searchBufSize]byte
}

var (
	iocSubvolCreate  = iow(14, unsafe.Sizeof(volArgs{}))
	iocSnapDestroy   = iow(15, unsafe.Sizeof(volArgs{}))
	iocSnapCreateV2  = iow(23, unsafe.Sizeof(volArgsV2{}))
	iocSubvolGetflag = uintptr(2<<30 | 8<<16 | ioctlMagic<<8 | 25)
	iocSubvolSetflag = iow(26, 8)
	iocInoLookup     = iowr(18, unsafe.Sizeof(inoLookupArgs{}))
	iocTreeSearch    = iowr(17, unsafe.Sizeof(searchArgs{}))
)

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

func openDir(p string) (int, error) {
	return unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// withParent opens the directory holding p and calls fn with it and p's
// base name, checked to fit the ioctl's name field.
func withParent(p string, max int, fn func(dfd int, name []byte) error) error {
	base := filepath.Base(p)
	if len(base) > max {
		return fmt.Errorf("subvolume name %q too long", base)
	}
	dfd, err := openDir(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return fn(dfd, []byte(base))
}

// subvolCreate makes an empty subvolume at p.
func subvolCreate(p string) error {
	return withParent(p, volNameMax, func(dfd int, name []byte) error {
		var a volArgs
		copy(a.name[:], name)
		if err := ioctl(dfd, iocSubvolCreate, unsafe.Pointer(&a)); err != nil {
			return fmt.Errorf("btrfs subvolume create %s: %w", p, err)
		}
		return nil
	})
}

// snapshotCreate makes p a snapshot of subvolume src, read-only if asked.
func snapshotCreate(src, p string, readonly bool) error {
	sfd, err := openDir(src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	return withParent(p, subvolNameMax, func(dfd int, name []byte) error {
		a := volArgsV2{fd: int64(sfd)}
		if readonly {
			a.flags = subvolRdonly
		}
		copy(a.name[:], name)
		if err := ioctl(dfd, iocSnapCreateV2, unsafe.Pointer(&a)); err != nil {
			return fmt.Errorf("btrfs subvolume snapshot %s %s: %w", src, p, err)
		}
		return nil
	})
}

// subvolDelete deletes the subvolume at p with everything in it, read-only
// or not.
func subvolDelete(p string) error {
	return withParent(p, volNameMax, func(dfd int, name []byte) error {
		var a volArgs
		copy(a.name[:], name)
		if err := ioctl(dfd, iocSnapDestroy, unsafe.Pointer(&a)); err != nil {
			return fmt.Errorf("btrfs subvolume delete %s: %w", p, err)
		}
		return nil
	})
}

// setReadonly sets or clears a subvolume's read-only flag.
func setReadonly(p string, ro bool) error {
	fd, err := openDir(p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(fd, iocSubvolGetflag, unsafe.Pointer(&flags)); err != nil {
		return fmt.Errorf("btrfs get flags of %s: %w", p, err)
	}
	if ro {
		flags |= subvolRdonly
	} else {
		flags &^= subvolRdonly
	}
	if err := ioctl(fd, iocSubvolSetflag, unsafe.Pointer(&flags)); err != nil {
		return fmt.Errorf("btrfs set read-only=%v on %s: %w", ro, p, err)
	}
	return nil
}

// isReadonly reports a subvolume's read-only flag.
func isReadonly(p string) (bool, error) {
	fd, err := openDir(p)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	var flags uint64
	if err := ioctl(fd, iocSubvolGetflag, unsafe.Pointer(&flags)); err != nil {
		return false, fmt.Errorf("btrfs get flags of %s: %w", p, err)
	}
	return flags&subvolRdonly != 0, nil
}

// isSubvolume reports whether p is the root of a subvolume (inode 256 on
// btrfs).
func isSubvolume(p string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Ino != firstFreeObjID {
		return false, nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(p, &fs); err != nil {
		return false, err
	}
	return uint32(fs.Type) == btrfsSuperMagic, nil
}

// subvolID is the tree ID of the subvolume holding p.
func subvolID(p string) (uint64, error) {
	fd, err := openDir(p)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	a := inoLookupArgs{objectid: firstFreeObjID}
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(&a)); err != nil {
		return 0, fmt.Errorf("btrfs subvolume id of %s: %w", p, err)
	}
	return a.treeid, nil
}

// errNoQuota: quotas are not enabled on the filesystem.
var errNoQuota = errors.New("btrfs quotas are not enabled")

// qgroupExclusive returns the bytes only the level-0 qgroup of subvolume
// id holds (its own extents, not those shared with its parent), read from
// the quota tree. dir is any path on the filesystem.
func qgroupExclusive(dir string, id uint64) (uint64, error) {
	fd, err := openDir(dir)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	a := searchArgs{
		treeID:  quotaTreeID,
		minType: qgroupInfoKey, maxType: qgroupInfoKey,
		minOffset: id, maxOffset: id,
		maxObjectID: 0, maxTransID: ^uint64(0),
		nrItems: 1,
	}
	if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&a)); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, errNoQuota
		}
		return 0, fmt.Errorf("btrfs search quota tree: %w", err)
	}
	if a.nrItems == 0 {
		return 0, fmt.Errorf("no qgroup 0/%d: %w", id, errNoQuota)
	}
	// struct btrfs_ioctl_search_header (32 bytes), then struct
	// btrfs_qgroup_info_item: generation, rfer, rfer_cmpr, excl, excl_cmpr.
	const hdr = 32
	le := binary.LittleEndian
	if l := le.Uint32(a.buf[28:32]); l < 40 {
		return 0, fmt.Errorf("qgroup 0/%d: item of %d bytes", id, l)
	}
	return le.Uint64(a.buf[hdr+24 : hdr+32]), nil
}

// onBtrfs reports whether dir is on a btrfs filesystem.
func onBtrfs(dir string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false, err
	}
	return uint32(fs.Type) == btrfsSuperMagic, nil
}

// removeAll deletes p: subvolumes inside it with the subvolume ioctl
// (their contents may be read-only), everything else as os.RemoveAll.
func removeAll(p string) error {
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if ok, err := isSubvolume(p); err == nil && ok {
		return subvolDelete(p)
	}
	entries, err := os.ReadDir(p)
	if err == nil {
		for _, e := range entries {
			if e.IsDir() {
				sub := filepath.Join(p, e.Name())
				if ok, err := isSubvolume(sub); err == nil && ok {
					if err := subvolDelete(sub); err != nil {
						return err
					}
				}
			}
		}
	}
	return os.RemoveAll(p)
}
