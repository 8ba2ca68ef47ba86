// Package btrfs is the btrfs snapshotter: each snapshot's tree is a btrfs
// subvolume, a child is a copy-on-write snapshot of its parent's subvolume
// (constant time, whatever the depth of the image), committed snapshots
// and views are read-only subvolumes, and usage is exact from btrfs
// qgroups when quotas are enabled on the filesystem (a walk otherwise).
//
// It shares the metadata store and layout of the other snapshotters
// (snapshot/storage): root/snapshots/<id>/fs is the subvolume. So creating
// and removing are crash-safe the same way: a subvolume being made lives
// under new-<random> until the metadata commits, and Open deletes any
// subvolume without metadata. Commit syncs the filesystem, sets the
// subvolume read-only, then commits the metadata; a crash in between
// leaves an active snapshot, which Open makes writable again (an unpack's
// extract snapshot is removed, never committed). Mounts are bind mounts of
// the subvolume's directory, so a diff reads the tree directly.
//
// The subvolume ioctls are called directly (no btrfs-progs at run time).
// New refuses a root that is not on btrfs.
package btrfs
