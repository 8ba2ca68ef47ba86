// Package diff computes and applies OCI layers between snapshot mounts: the
// two halves of containerd's diff service.
//
// Compare(lower, upper) writes the changes that turn the lower tree into the
// upper one as an OCI layer tar: added and modified entries with their
// owner, mode, mtime, xattrs, hard links and device numbers, ".wh.<name>"
// for a deletion and ".wh..wh..opq" for a directory whose lower contents
// are hidden (overlayfs's opaque directory). It compresses the tar (gzip,
// zstd or none) and reports both the digest of what it wrote and the diffID
// (sha256 of the uncompressed tar). It writes to an io.Writer: the caller
// (node) owns the content store, since snapshot packages import no store.
//
// Two ways to find the changes:
//   - overlay fast path: when upper is an overlay whose lowerdirs are
//     exactly lower's layers, the changes are the upperdir itself, read
//     directly (a 0/0 character device is a whiteout, trusted.overlay.opaque
//     an opaque directory); nothing is compared;
//   - otherwise both trees are mounted read-only and walked side by side: an
//     entry is changed when its type, mode, owner, size, mtime, link target,
//     device number or xattrs differ (as containerd's fs.Changes, which
//     trusts mtime+size for file contents).
//
// Output is reproducible: entries are sorted by path, headers carry no user
// or group names, atime or ctime, PAX records are sorted, gzip has no name
// or time, and Options.SourceDateEpoch clamps every mtime, so the same
// changes give the same digest.
//
// Apply is unpack's layer application (snapshot/unpack.ApplyMounts) with the
// same confinement and whiteout handling as an image pull.
package diff
