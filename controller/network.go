package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/network"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// Networks is what the Network reconciler needs of the node's networks
// (network.Manager).
type Networks interface {
	EnsureNetwork(ns, name string, s network.Spec) (network.Network, error)
	RemoveNetwork(ns, name string) error
	// InUse lists the containers ("ns/id") attached to a network.
	InUse(ns, name string) []string
	Builtin() network.Network
	Networks() ([]network.Network, error)
}

// inUseRecheck is how often a Network that could not be removed because
// containers use it is tried again (their removal wakes nothing).
var inUseRecheck = 2 * time.Second

// networkSpec is the network package's Spec of a Network object.
func networkSpec(s spec.NetworkSpec) network.Spec {
	return network.Spec{Subnet: s.Subnet, Gateway: s.Gateway, IPRange: s.IPRange, IPMasq: s.IPMasq,
		Isolate: s.Isolate, MTU: s.MTU, Driver: s.Driver, Master: s.Master}
}

// reconcileNetwork writes a Network's conflist and isolation rules. A
// subnet overlapping the built-in network's or another Network's is
// Degraded naming it, and nothing is written: the network that has it
// (the one already written, else the first by namespace and name) keeps
// it. Containers attached keep their configuration until they are
// recreated (their instance hash includes the Network's spec).
func (c *Controller) reconcileNetwork(ctx context.Context, e desired.Entry) (Result, error) {
	ns, name := e.Key.Namespace, e.Key.Name
	if c.opts.Networks == nil {
		return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "NetworkingUnavailable",
			message: "berthd has no CNI networking configured"})}, nil
	}
	ns0, _ := e.Object.NetworkSpec()
	if other := c.overlapping(e, ns0.Subnet); other != "" {
		msg := fmt.Sprintf("subnet %s overlaps %s; choose a subnet no other network uses", ns0.Subnet, other)
		return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "SubnetOverlap", message: msg, owns: name})}, nil
	}
	n, err := c.opts.Networks.EnsureNetwork(ns, name, networkSpec(ns0))
	if err != nil {
		reason := "CreateFailed"
		if errdefs.IsInvalidArgument(err) {
			reason = "InvalidSpec"
		}
		c.record(ctx, e, observation{degraded: true, reason: reason, message: err.Error(), owns: name})
		return Result{}, err
	}
	used := c.opts.Networks.InUse(ns, name)
	return Result{Changed: c.record(ctx, e, observation{ready: true, owns: name, kind: func(st *spec.Status) {
		st.NetworkStatus = &spec.NetworkStatus{Bridge: n.Bridge, CNINetwork: n.CNIName, UsedBy: used}
	}})}, nil
}

// overlapping names what a Network's subnet overlaps: the built-in
// network, or another declared Network that wins it (one already written
// on the node, else the first by namespace and name).
func (c *Controller) overlapping(e desired.Entry, subnet string) string {
	b := c.opts.Networks.Builtin()
	if network.Overlaps(subnet, b.Spec.Subnet) {
		return fmt.Sprintf("the built-in network %q (%s)", b.Name, b.Spec.Subnet)
	}
	written := map[string]bool{}
	if nets, err := c.opts.Networks.Networks(); err == nil {
		for _, n := range nets {
			written[n.Namespace+"/"+n.Name] = true
		}
	}
	self := e.Key.Namespace + "/" + e.Key.Name
	for _, o := range c.opts.Desired.List(desired.Filter{Kind: spec.KindNetwork}) {
		other := o.Key.Namespace + "/" + o.Key.Name
		os, ok := o.Object.NetworkSpec()
		if !ok || other == self || !network.Overlaps(subnet, os.Subnet) {
			continue
		}
		// The other keeps the subnet if it is on the node and this one is
		// not, or if neither (or both) are and it sorts first.
		if (written[other] && !written[self]) || (written[other] == written[self] && other < self) {
			return fmt.Sprintf("Network %s (%s)", other, os.Subnet)
		}
	}
	return ""
}

// teardownNetwork removes a Network no longer declared, unless containers
// are attached to it: then its status says which, and it is tried again.
// done says the status may go.
func (c *Controller) teardownNetwork(ctx context.Context, st observed.ObjectStatus) (done bool, res Result, err error) {
	if c.opts.Networks == nil {
		return true, Result{}, nil
	}
	ns, name := st.Key.Namespace, st.Key.Name
	if used := c.opts.Networks.InUse(ns, name); len(used) > 0 {
		e := desired.Entry{Key: st.Key, Source: st.Source, Generation: st.Status.ObservedGeneration, Hash: st.SpecHash}
		msg := fmt.Sprintf("the Network is no longer declared but is in use by container %s; it is removed once they are", strings.Join(used, ", "))
		c.record(ctx, e, observation{degraded: true, reason: "InUse", message: msg, owns: name, kind: func(s *spec.Status) {
			s.NetworkStatus = &spec.NetworkStatus{UsedBy: used}
		}})
		return false, Result{RequeueAfter: inUseRecheck}, nil
	}
	if err := c.opts.Networks.RemoveNetwork(ns, name); err != nil {
		return false, Result{}, fmt.Errorf("remove network %s/%s: %w", ns, name, err)
	}
	return true, Result{}, nil
}

// networkHash is what a Container's instance depends on of its network:
// the spec hash of the declared Network it names ("" for the built-in
// network, host, none, or a conflist of the node's), so a changed Network
// recreates its containers as a changed Container spec does.
func (c *Controller) networkHash(ns string, cs spec.ContainerSpec) (hash string, declared bool) {
	if !cs.Network.Bridged() || cs.Network == spec.NetworkBridge {
		return "", false
	}
	e, ok := c.opts.Desired.Get(spec.Key{Namespace: ns, Kind: spec.KindNetwork, Name: string(cs.Network)})
	if !ok {
		return "", false
	}
	return e.Hash, true
}
