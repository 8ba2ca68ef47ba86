// Package observed records what exists on the node — namespaces, image
// records, containers and the status of declared objects — and publishes
// what happens on the event bus. It is passive: it stores and publishes and
// decides nothing. The records are a cache of the truth (content, snapshots
// and live shims); berthd rebuilds what it cannot trust at start.
//
// Buckets, in the bbolt file berthd passes in (values are JSON):
//
//	v1/
//	└── namespaces/
//	    └── <namespace>/
//	        ├── meta        → Namespace (labels, created)
//	        ├── images/
//	        │   └── <name>  → Image
//	        ├── containers/
//	        │   └── <id>    → Container
//	        └── status/
//	            └── <Kind>/
//	                └── <name> → spec.Status of a declared object
//
// Other packages keep their own top-level buckets in the same file
// (desired keeps the objects applied through the API).
package observed
