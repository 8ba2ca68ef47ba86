// Package storage is the metadata store and directory layout shared by the
// overlay and native snapshotters: one bbolt file, one directory per
// snapshot, and the crash-safe steps that keep the two in agreement.
//
// Layout under a snapshotter's root:
//
//	root/metadata.db                 bbolt, NoSync=false
//	root/snapshots/<id>/fs           the snapshot's tree (upperdir for overlay)
//	root/snapshots/<id>/work         overlay workdir (overlay actives only)
//	root/snapshots/new-<random>      a snapshot being created (not yet in the db)
//	root/snapshots/rm-<id>           a snapshot being removed
//
// Buckets:
//
//	v1
//	 ├─ snapshots
//	 │   └─ <key>                    one bucket per snapshot
//	 │        ├─ id      → uint64, big endian; names root/snapshots/<id>
//	 │        ├─ kind    → one byte, snapshot.Kind
//	 │        ├─ parent  → parent key (absent for none)
//	 │        ├─ created → time.Time.MarshalBinary
//	 │        ├─ updated → time.Time.MarshalBinary
//	 │        └─ labels  (bucket) label → value
//	 └─ parents
//	     └─ <parent id><child id> → child key  (16 bytes; children of a parent
//	                                 are a prefix scan)
//
// The ids come from the snapshots bucket's sequence.
//
// Crash safety. Create builds its directory under new-<random>, then in one
// bbolt transaction writes the metadata and renames the directory to <id>
// (fsyncing the snapshots directory before the transaction commits). Remove
// renames <id> to rm-<id> inside the transaction that deletes the metadata,
// and deletes the directory after the commit. On Open, new-* directories are
// deleted, an rm-<id> whose metadata still exists (a crash before the commit)
// is renamed back, and every other directory without metadata is deleted. So a
// crash at any point leaves the old state or the new one.
package storage
