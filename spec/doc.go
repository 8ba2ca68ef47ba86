// Package spec is berth's manifest model: the Image, Container and Task
// kinds, parsing of multi-document YAML and JSON, defaulting, validation
// with field paths, and the canonical hash of a spec.
//
// It is pure: it never touches the filesystem, the network or the clock.
// Parse takes bytes and the name they came from; everything else works on
// values and returns new values.
//
// A manifest goes through three steps, always in this order:
//
//	objs, err := spec.Parse("web.yaml", data) // strict: unknown fields and duplicate keys fail
//	for i := range objs {
//		objs[i] = spec.Default(objs[i])        // a new value; the input is untouched
//		if err := spec.Validate(objs[i]); err != nil { … } // every field error at once
//		h := spec.Hash(objs[i])                // what a change of spec means
//	}
//
// Error messages name the file, the document (1-based, counting non-empty
// documents), the object and the field:
//
//	web.yaml: document 2: Container default/web: spec.resources.memory: "64Q" is not a quantity
//
// Defaults, chosen to be unsurprising and safe on an edge device:
//
//	metadata.namespace        default
//	Image.spec.pullPolicy     IfNotPresent; Always when the ref has no tag, or the tag
//	                          latest, and no digest (as kubectl does)
//	Image.spec.snapshotter    overlayfs
//	Image.spec.platform       empty, meaning the host's (resolved by the controller, so
//	                          the hash does not depend on where it is computed)
//	Container.spec.network    none: network access is opt-in (`network: host`)
//	Container.spec.runtime    runc
//	Container.spec.mounts[].type  bind when a source is given, tmpfs otherwise
//	Task.spec.state           Running
//	Task.spec.restartPolicy   Always
//	Task.spec.stopTimeout     10s
//
// Relative paths in Image.spec.source are relative to the directory of the
// manifest file; Origin.Dir records it and Object.ResolvePath applies it.
// Objects applied through the API have no directory: their paths must be
// absolute (the CLI resolves them before sending).
//
// Bounds: a file of at most MaxFileSize bytes, at most MaxDocuments
// documents, YAML nesting of at most 10000 levels (the parser's own limit),
// and YAML aliases only in documents of at most MaxAliasDocSize bytes on top
// of the parser's alias-ratio check, so a "billion laughs" document is
// refused in milliseconds without expanding it.
package spec
