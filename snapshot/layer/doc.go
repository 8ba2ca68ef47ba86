// Package layer applies OCI layer tar streams onto a directory tree.
//
// Apply detects the compression (gzip, zstd or none) from the stream's first
// bytes, decompresses in its own goroutine, hashes the uncompressed stream
// (the diffID) in another, and extracts on the caller's goroutine, so the
// three overlap on a multi-core machine.
//
// Confinement. The root is opened once; every entry's parent directory is
// opened with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)
// relative to it, and the entry itself is created with *at(2) calls on that
// descriptor that never follow a final symlink. So the host never follows a
// link from the layer, and nothing is written outside the root.
//
// Policy for hostile or odd names:
//   - a leading "/" or "./" is stripped ("/etc/x" is applied as "etc/x"), as
//     tar(1) does; the same for hard link targets, which must exist in the
//     root (or, in overlay mode, in a parent layer);
//   - any ".." component, a NUL byte, a name over Limits.MaxPathLen, or a
//     whiteout naming "." or ".." is refused;
//   - an entry whose parent path goes through a symlink (in the root, or
//     created earlier in this layer) is refused: layer diffs name real paths,
//     and refusing is simpler to trust than re-rooting the link;
//   - the root entry ("./") is ignored: the root belongs to the snapshotter.
//
// Errors for hostile input wrap errdefs.ErrInvalidArgument and name the entry.
//
// Whiteouts: with Options.OverlayWhiteouts (applying into an overlay's
// upperdir) ".wh.x" becomes a 0/0 character device and ".wh..wh..opq" the
// trusted.overlay.opaque=y xattr; otherwise the whited-out paths are deleted
// (native snapshots, and the bottom layer).
package layer
