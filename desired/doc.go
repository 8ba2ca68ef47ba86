// Package desired is berth's desired state: the objects that should
// exist on the node, keyed by (namespace, kind, name), each owned by one
// source, and the sources that feed it.
//
// A Store holds, per key, the Entry in force: the defaulted object, its
// source (a manifest file's path or "api"), its spec hash and a
// generation bumped when the hash changes. Sources replace their whole
// set at once (Store.Update, Store.ReplaceSource); a source that fails to
// read keeps its last good objects and has its error reported
// (Store.Sources). A key declared by two sources stays with the source
// that had it (or declared it first) and the other is reported as a
// Conflict that changes nothing; when the owner drops the key the other
// takes it over in the same update. Subscribe delivers changed keys,
// coalesced, without ever blocking the store.
//
// Worked example, as berthd wires it:
//
//	store := desired.NewStore()
//	dir := desired.NewDirSource("/etc/berth/manifests", store, desired.DirOptions{})
//	api, err := desired.OpenAPISource(db, store)
//	keys := store.Subscribe(ctx)       // before the first List
//	go dir.Run(ctx)
//	for k := range keys { queue.Add(k) } // the controller reads store.Get(k) afresh
//	// Delete nothing observed until store.Synced().
//
// DirSource reads a watched directory (see its doc and ARCHITECTURE.md,
// "The watched directory"). APISource keeps objects applied through the
// API in bbolt, in these buckets:
//
//	desired/                      (bucket)
//	└── objects/                  (bucket)
//	    └── <namespace>/<Kind>/<name> → JSON {"object": {manifest form},
//	                                          "manager": "…", "appliedAt": RFC 3339}
//
// Objects are stored defaulted and validated; on open each is validated
// again, and one that no longer is valid is reported, not deleted.
//
// Revisions keeps the revisions of atomic sets (berth apply --atomic, the
// watched directory in atomic mode) beside them:
//
//	desired/revisions/<set>/state  → {"current": N, "pending": M, "last": L}
//	desired/revisions/<set>/<N>    → RolloutRevision JSON (objects, and
//	                                  while pending the records it replaced)
package desired
