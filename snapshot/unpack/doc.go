// Package unpack turns an image's layers into committed snapshots named by
// their chain IDs, on any snapshot.Snapshotter.
//
// It does not read content itself: the caller passes, per layer, an Open
// function that may block until the blob has been downloaded, so applying
// layer 0 starts while later layers are still arriving.
//
// Each missing layer is applied into an active snapshot keyed
// "extract-<random>-<chainID>" and labelled LabelUnpacking; it is committed
// under the chain ID only after the diffID verified and the data is synced,
// and removed on any error. CleanupStale removes what a crash left.
package unpack
