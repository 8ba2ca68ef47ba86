package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// loopback brings the namespace's lo up.
var loopbackConf = []byte(`{"cniVersion":"1.0.0","name":"berth-lo","type":"loopback"}`)

// Attach puts a container on its network: it creates the container's
// namespace, runs the network's plugins (ADD) and writes its hosts,
// resolv.conf and hostname files, then rewrites the hosts files of the
// network's other containers. An attachment already complete for the same
// request is returned as it is; a half-done one (a crash, a changed
// request) is detached first. A host port another container publishes is
// errdefs.ErrConflict naming that container; a network that does not exist
// is errdefs.ErrNotFound.
func (m *Manager) Attach(ctx context.Context, req Request) (Attachment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ns, id := req.Namespace, req.ID
	if prev, err := m.readRecord(ns, id); err == nil {
		if prev.Phase == phaseAttached && isNetNS(prev.NetNS) && requestEqual(prev.Request, req) {
			return prev, nil
		}
		if err := m.detach(ctx, prev); err != nil {
			return Attachment{}, err
		}
	} else if !errdefs.IsNotFound(err) {
		return Attachment{}, err
	}
	list, err := m.loadConflist(ns, req.Network)
	if err != nil {
		return Attachment{}, err
	}
	if err := m.checkPorts(req); err != nil {
		return Attachment{}, err
	}
	a := Attachment{Namespace: ns, ID: id, Network: req.Network, CNIName: list.Name, Phase: phaseAttaching,
		Request: req, NetNS: m.NetNSPath(ns, id), Ports: req.Ports, Conflist: list.Bytes}
	if err := m.writeRecord(a); err != nil {
		return Attachment{}, fmt.Errorf("record attachment of %s/%s: %w", ns, id, err)
	}
	ok := false
	defer func() {
		if !ok {
			if derr := m.detach(context.WithoutCancel(ctx), a); derr != nil {
				m.log.Warn("undo failed attach", "container", key(ns, id), "err", derr)
			}
		}
	}()
	_ = removeNetNS(a.NetNS) // a file left by a crash before its record
	if err := createNetNS(a.NetNS); err != nil {
		return Attachment{}, err
	}
	lo, err := libcni.NetworkPluginConfFromBytes(loopbackConf)
	if err != nil {
		return Attachment{}, err
	}
	if _, err := m.cni.AddNetwork(ctx, lo, m.runtimeConf(a)); err != nil {
		return Attachment{}, fmt.Errorf("network %s: loopback of %s/%s: %w", req.Network, ns, id, err)
	}
	res, err := m.cni.AddNetworkList(ctx, list, m.runtimeConf(a))
	if err != nil {
		return Attachment{}, fmt.Errorf("network %s: attach %s/%s: %w", req.Network, ns, id, err)
	}
	if err := fillResult(&a, res); err != nil {
		return Attachment{}, fmt.Errorf("network %s: result for %s/%s: %w", req.Network, ns, id, err)
	}
	if err := m.writeFiles(a); err != nil {
		return Attachment{}, err
	}
	a.Phase = phaseAttached
	if err := m.writeRecord(a); err != nil {
		return Attachment{}, err
	}
	ok = true
	m.refreshPeers(a.CNIName, key(ns, id))
	return a, nil
}

func requestEqual(a, b Request) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// runtimeConf is the CNI runtime configuration of an attachment: the
// container id berth gives CNI is "<namespace>.<id>".
func (m *Manager) runtimeConf(a Attachment) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: key(a.Namespace, a.ID), NetNS: a.NetNS, IfName: ifName,
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAME", a.ID}, {"K8S_POD_NAMESPACE", a.Namespace}}}
	if len(a.Ports) > 0 {
		var pm []map[string]any
		for _, p := range a.Ports {
			e := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": p.Protocol}
			if p.HostIP != "" {
				e["hostIP"] = p.HostIP
			}
			pm = append(pm, e)
		}
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// fillResult copies the addresses and interfaces of a CNI result.
func fillResult(a *Attachment, r types.Result) error {
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return err
	}
	for _, ip := range res.IPs {
		a.IPs = append(a.IPs, ip.Address.String())
		if ip.Gateway != nil && a.Gateway == "" {
			a.Gateway = ip.Gateway.String()
		}
	}
	for _, in := range res.Interfaces {
		switch {
		case in.Sandbox != "" && in.Name == ifName:
			a.MAC = in.Mac
		case in.Sandbox == "" && in.Mac != "" && a.HostVeth == "" && !strings.HasPrefix(in.Name, "berth"):
			a.HostVeth = in.Name
		}
	}
	if len(a.IPs) == 0 {
		return errors.New("the plugins gave no address")
	}
	return nil
}

// checkPorts refuses a host port another attachment publishes on an
// address the request's overlaps (unset is every address).
func (m *Manager) checkPorts(req Request) error {
	if len(req.Ports) == 0 {
		return nil
	}
	all, err := m.List()
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Namespace == req.Namespace && o.ID == req.ID {
			continue
		}
		for _, p := range req.Ports {
			for _, q := range o.Ports {
				if p.HostPort == q.HostPort && strings.EqualFold(p.Protocol, q.Protocol) &&
					(p.HostIP == "" || q.HostIP == "" || p.HostIP == q.HostIP) {
					return fmt.Errorf("host port %d/%s is already published by container %s/%s: %w",
						p.HostPort, strings.ToLower(p.Protocol), o.Namespace, o.ID, errdefs.ErrConflict)
				}
			}
		}
	}
	return nil
}

// Detach removes a container from its network: DEL with the configuration
// it was added with, then its namespace and files, then its name from its
// peers' hosts files. No attachment is fine.
func (m *Manager) Detach(ctx context.Context, ns, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, err := m.readRecord(ns, id)
	if errdefs.IsNotFound(err) {
		// No record, but a namespace file may be left by a crash
		// between its creation and the record.
		return removeNetNS(m.NetNSPath(ns, id))
	}
	if err != nil {
		return err
	}
	return m.detach(ctx, a)
}

func (m *Manager) detach(ctx context.Context, a Attachment) error {
	if a.Phase != phaseDetaching {
		a.Phase = phaseDetaching
		if err := m.writeRecord(a); err != nil {
			return err
		}
	}
	if len(a.IPs) == 0 {
		// Half attached (a crash mid-ADD): the address is only in the
		// lease, which DEL releases; the sweep below needs it.
		a.IPs = m.leasedIPs(a)
	}
	err := m.del(ctx, a.Conflist, m.runtimeConf(a))
	// Whatever DEL did, what it can leave in the firewall goes; a DEL that
	// failed is retried (the record stays "detaching").
	m.purgeRules(a)
	if err != nil {
		return fmt.Errorf("network %s: detach %s/%s: %w", a.Network, a.Namespace, a.ID, err)
	}
	if err := removeNetNS(a.NetNS); err != nil {
		return err
	}
	if err := os.RemoveAll(m.FilesDir(a.Namespace, a.ID)); err != nil {
		return err
	}
	m.refreshPeers(a.CNIName, "")
	if left, _ := m.List(); !slices.ContainsFunc(left, func(o Attachment) bool { return o.CNIName == a.CNIName }) {
		m.emptied(a)
	}
	return nil
}

// del runs CNI DEL of a conflist and of the loopback. A namespace already
// gone is passed as none: the plugins then release what lives outside it
// (leases, iptables rules), which is what DEL after a reboot needs.
func (m *Manager) del(ctx context.Context, conf []byte, rt *libcni.RuntimeConf) error {
	if !isNetNS(rt.NetNS) {
		rt.NetNS = ""
	}
	m.log.Debug("cni del", "container", rt.ContainerID, "netns", rt.NetNS)
	if len(conf) > 0 {
		list, err := libcni.NetworkConfFromBytes(conf)
		if err != nil {
			return fmt.Errorf("stored conflist: %w", err)
		}
		if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
			return err
		}
	}
	lo, err := libcni.NetworkPluginConfFromBytes(loopbackConf)
	if err != nil {
		return err
	}
	if rt.NetNS == "" {
		// loopback's DEL needs the namespace; without it there is
		// nothing to undo, only libcni's cache entry.
		_ = os.Remove(filepath.Join(m.cacheDir(), "results", "berth-lo-"+rt.ContainerID+"-"+rt.IfName))
		return nil
	}
	return m.cni.DelNetwork(ctx, lo, rt)
}

// Recover, at start, detaches what a crash left half done and what no
// container owns any more (exists says which containers exist), removes
// namespace files no record names, and releases cached attachments with
// no record (what a reboot left: leases and rules outlive the tmpfs state).
func (m *Manager) Recover(ctx context.Context, exists func(ns, id string) bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.List()
	if err != nil {
		return err
	}
	var errs []error
	known := map[string]bool{}
	for _, a := range all {
		if a.Phase == phaseAttached && isNetNS(a.NetNS) && exists(a.Namespace, a.ID) {
			known[key(a.Namespace, a.ID)] = true
			continue
		}
		m.log.Info("detaching a container's network left by a crash", "container", key(a.Namespace, a.ID), "phase", a.Phase)
		if err := m.detach(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	if ents, err := os.ReadDir(m.netnsDir()); err == nil {
		for _, e := range ents {
			if !known[e.Name()] {
				errs = append(errs, removeNetNS(filepath.Join(m.netnsDir(), e.Name())))
			}
		}
	}
	if ents, err := os.ReadDir(m.containersDir()); err == nil {
		for _, e := range ents {
			if !known[e.Name()] {
				errs = append(errs, os.RemoveAll(filepath.Join(m.containersDir(), e.Name())))
			}
		}
	}
	cached, err := m.cni.GetCachedAttachments("")
	if err != nil {
		errs = append(errs, err)
	}
	for _, c := range cached {
		if known[c.ContainerID] || c.Network == "berth-lo" {
			if !known[c.ContainerID] {
				_ = os.Remove(filepath.Join(m.cacheDir(), "results", c.Network+"-"+c.ContainerID+"-"+c.IfName))
			}
			continue
		}
		m.log.Info("releasing a cached attachment no container owns", "container", c.ContainerID, "network", c.Network)
		rt := &libcni.RuntimeConf{ContainerID: c.ContainerID, NetNS: "", IfName: c.IfName, Args: c.CniArgs, CapabilityArgs: c.CapabilityArgs}
		err := m.del(ctx, c.Config, rt)
		if ns, id, ok := strings.Cut(c.ContainerID, "."); ok {
			m.purgeRules(Attachment{Namespace: ns, ID: id, CNIName: c.Network})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("release cached attachment %s on %s: %w", c.ContainerID, c.Network, err))
		}
	}
	m.gc(ctx, known)
	m.cleanupFirewall()
	return errors.Join(errs...)
}

// InUse lists the containers ("ns/id") attached to a container network
// name of namespace ns.
func (m *Manager) InUse(ns, name string) []string {
	all, _ := m.List()
	cni := CNIName(ns, name)
	var out []string
	for _, a := range all {
		if a.CNIName == cni {
			out = append(out, a.Namespace+"/"+a.ID)
		}
	}
	slices.Sort(out)
	return out
}

// leasedIPs are the addresses host-local leased to an attachment (the
// lease file, named by the address, holds the container id first).
func (m *Manager) leasedIPs(a Attachment) []string {
	dir := filepath.Join(m.IPAMDir(), a.CNIName)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if id, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n"); strings.TrimSpace(id) == key(a.Namespace, a.ID) {
			out = append(out, e.Name()+"/32")
		}
	}
	return out
}
