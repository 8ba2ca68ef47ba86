// Package cri serves the Container Runtime Interface (k8s.io/cri-api
// runtime.v1) over gRPC, so that a kubelet (or crictl, or critest) can use
// berth as its runtime, the way it uses containerd or CRI-O.
//
// It is a front door beside api/server: it turns CRI calls into the node's
// imperative operations (images, containers, tasks) and the network
// package's attachments, and never touches the manifest controllers.
// Everything it makes lives in namespace k8s.io (spec.CRINamespace), as
// containerd's CRI plugin's objects do, so `berth -n k8s.io task ls`,
// events, stats and metrics show the kubelet's pods too; manifests may not
// claim that namespace.
//
// Image IDs are the image config's digest (as containerd reports them);
// each image record of the namespace is one repo tag or repo digest of the
// image whose ID its manifest names.
package cri
