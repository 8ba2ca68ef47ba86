// Package bundle is the contract between berthd and its shims, and the only
// package both sides import: the names of the files in a bundle directory,
// the durable exit record, the launcher that starts a shim detached, and
// the error classes on the wire.
//
// It is a leaf (the standard library, errdefs and grpc's status codes) so
// that berthd, which reads exit records and starts shims, never links the
// shim's server, and the shim never links berthd's client.
package bundle
