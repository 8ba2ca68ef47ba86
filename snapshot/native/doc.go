// Package native is the copy-based snapshotter, for filesystems where
// overlayfs cannot be used (overlay on overlay, some network filesystems).
//
// Prepare and View copy the parent's tree into the new snapshot's
// root/snapshots/<id>/fs (preserving owners, modes, xattrs, hard links,
// symlinks, device nodes and mtimes; reflinks or copy_file_range where the
// filesystem offers them); Mounts is a bind mount of that directory. The
// metadata store and crash-safety steps are those of package
// berth.dev/berth/snapshot/storage, shared with the overlay snapshotter.
package native
