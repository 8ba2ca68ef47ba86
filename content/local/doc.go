// Package local is berth's content store on a local filesystem.
//
// Layout under the root directory:
//
//	root/
//	├── blobs/sha256/<hex>          committed blobs, read-only, named by digest
//	├── ingest/<sha256(ref)>/       one directory per ingest in progress
//	│   ├── data                    the bytes written so far
//	│   ├── ref                     the ingest's ref (its name)
//	│   ├── total                   expected size (decimal, 0 = unknown)
//	│   ├── expected                expected digest ("" = unknown)
//	│   ├── startedat               RFC 3339 time
//	│   └── lock                    flock(2)ed by the open Writer
//	└── metadata.db                 bbolt: labels and times (a cache)
//
// The blob files are the truth: a blob exists iff its file exists. The bbolt
// file only adds labels and times; a blob without a record gets a fresh one
// (on open and on first use) and a record without a blob is dropped on open.
//
// Buckets in metadata.db:
//
//	v1                          (bucket)
//	└── blobs                   (bucket)
//	    └── <digest>            (bucket, e.g. "sha256:ab…")
//	        ├── size            int64, 8 bytes big-endian
//	        ├── createdat       time.Time MarshalBinary
//	        ├── updatedat       time.Time MarshalBinary
//	        └── labels          (bucket) <key> → <value>
//
// Crash safety: ingest data is fsynced at Commit, renamed into blobs/ and the
// directory fsynced before the metadata transaction, so a crash at any point
// leaves either no blob or a verified one. Small ingest files are written
// temp+fsync+rename. On open, leftover temp files and ingests without a ref
// are removed; Verify re-hashes a blob one is unsure of.
package local
