// Package controller drives the node towards the desired state.
//
// Reconcilers are level-triggered: Reconcile(ctx, key) reads the desired
// object and what is observed afresh and takes the next step, through the
// node's operations. Keys come from desired-state changes, task exits, the
// objects an object depends on, and a periodic resync that repairs drift (a
// task or container removed behind berth's back). A failed step is retried
// with per-key exponential backoff that is capped and never gives up.
//
// Ownership: a Container object makes the container of the same name in its
// namespace; a Task object runs the task of the container it names. Image
// objects record their image under the normalised reference. The status of
// every declared object is kept in observed; an object with a status but no
// desired entry is torn down — but only once every source has been read, so
// that a restart never deletes what the manifests still declare.
package controller
