// Package overlay is the overlayfs snapshotter, berth's default.
//
// Each snapshot is a directory root/snapshots/<id> with fs (the layer, the
// upperdir while active) and work (the overlay workdir). Metadata lives in
// root/metadata.db; its buckets and the crash-safety steps are those of
// package berth.dev/berth/snapshot/storage, shared with the native
// snapshotter.
//
// Mounts:
//   - an active without parent: a rw bind mount of its fs;
//   - an active with parents: overlay, lowerdir = the parents' fs, nearest
//     first, upperdir and workdir its own;
//   - a view of one committed layer: a ro bind mount of that layer's fs;
//   - a view of a longer chain: a lowerdir-only (read-only) overlay.
//
// A chain too long for mount(2)'s one-page data is handled by
// snapshot.MountAll (fsconfig "lowerdir+", or relative paths).
package overlay
