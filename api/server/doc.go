// Package server implements berthd's ttrpc services. It is the API edge:
// it checks requests, calls the stores and the node's operations, and maps
// error classes (github.com/containerd/errdefs) to ttrpc status codes here
// and nowhere else. Writes of declared objects go to the desired state and
// return; the controllers pick them up.
package server
