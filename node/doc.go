// Package node holds the node's imperative operations — pull, import,
// export, unpack and remove images; garbage collection; create, start and
// stop containers — as ctr would run them. It joins the stores of the layer
// below (content, snapshot, shim, observed) without them knowing of each
// other: content is handed to snapshot as a reader.
//
// The API server calls it for imperative requests, and the controllers call
// it to take each step towards the desired state, so both share one
// implementation of every operation.
package node
