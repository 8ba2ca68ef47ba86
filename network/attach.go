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
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// loopbackName is the CNI network name of the loopback plugin, which
// attachments made by an older berthd ran; berth now sets lo up itself
// (createNetNS) and only removes that plugin's libcni cache entries.
const loopbackName = "berth-lo"

// Attach puts a container on its network: it creates the container's
// namespace, runs the network's plugins (ADD) and writes its hosts,
// resolv.conf and hostname files, then rewrites the hosts files of the
// network's other containers. An attachment already complete for the same
// request is returned as it is; a half-done one (a crash, a changed
// request) is detached first. A host port another container publishes is
// errdefs.ErrConflict naming that container; a network that does not exist
// is errdefs.ErrNotFound. Attaches of different containers run side by
// side.
func (m *Manager) Attach(ctx context.Context, req Request) (Attachment, error) {
	ns, id := req.Namespace, req.ID
	release, err := m.acquire(ctx, key(ns, id))
	if err != nil {
		return Attachment{}, err
	}
	defer release()
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
	p, err := planFor(list, req)
	if err != nil {
		return Attachment{}, err
	}
	a := Attachment{Namespace: ns, ID: id, Network: req.Network, CNIName: list.Name, Phase: phaseAttaching,
		Request: req, NetNS: m.NetNSPath(ns, id), Ports: req.Ports, Conflist: p.list.Bytes}
	if err := m.admit(ctx, a); err != nil {
		return Attachment{}, err
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
	var res types.Result
	err = m.onNetwork(a.CNIName, p.rules, func() error {
		if len(a.Ports) > 0 {
			// portmap creates the host's shared CNI-HOSTPORT chains
			// and then jumps to them; another berthd's cleanup of
			// empty ones (cleanupFirewall) must not fall in between.
			unlock := lockHostRules()
			defer unlock()
		}
		var err error
		res, err = m.cni.AddNetworkList(ctx, p.list, m.runtimeConf(a))
		return err
	})
	if err != nil {
		return Attachment{}, fmt.Errorf("network %s: attach %s/%s: %w", req.Network, ns, id, err)
	}
	if err := fillResult(&a, res); err != nil {
		return Attachment{}, fmt.Errorf("network %s: result for %s/%s: %w", req.Network, ns, id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
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

// acquire waits until no other operation runs for container k and claims
// it; release ends the claim.
func (m *Manager) acquire(ctx context.Context, k string) (release func(), err error) {
	for {
		m.mu.Lock()
		ch, busy := m.ops[k]
		if !busy {
			ch = make(chan struct{})
			m.ops[k] = ch
			m.mu.Unlock()
			return func() {
				m.mu.Lock()
				delete(m.ops, k)
				m.mu.Unlock()
				close(ch)
			}, nil
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// admit checks a's host ports against every other attachment's and
// records it "attaching", as one step, so two attaches cannot both take a
// port. A port held by a container being detached in the background is
// waited for.
func (m *Manager) admit(ctx context.Context, a Attachment) error {
	for {
		m.mu.Lock()
		holder, err := m.checkPorts(a.Request)
		if err != nil && holder.Phase == phaseDetaching {
			hk := key(holder.Namespace, holder.ID)
			if ch, busy := m.ops[hk]; busy {
				m.mu.Unlock()
				select {
				case <-ch:
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			// Its detach gave up in the background (left for berthd's
			// next start): finish it now, the port is wanted, rather
			// than refuse it for a container that is gone.
			m.mu.Unlock()
			if derr := m.finishDetach(ctx, holder.Namespace, holder.ID); derr != nil {
				return fmt.Errorf("%w (its detach failed: %v)", err, derr)
			}
			continue
		}
		if err == nil {
			if werr := m.writeRecord(a); werr != nil {
				err = fmt.Errorf("record attachment of %s/%s: %w", a.Namespace, a.ID, werr)
			}
		}
		m.mu.Unlock()
		return err
	}
}

// finishDetach runs again the detach of ns/id that its record says is
// under way, under the container's claim.
func (m *Manager) finishDetach(ctx context.Context, ns, id string) error {
	release, err := m.acquire(ctx, key(ns, id))
	if err != nil {
		return err
	}
	defer release()
	a, err := m.readRecord(ns, id)
	if errdefs.IsNotFound(err) {
		return nil // finished by someone else meanwhile
	}
	if err != nil {
		return err
	}
	if a.Phase != phaseDetaching {
		return nil
	}
	return m.detach(ctx, a)
}

// net is the state of CNI network cni.
func (m *Manager) net(cni string) *netState {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.nets[cni]
	if st == nil {
		st = &netState{}
		m.nets[cni] = st
	}
	return st
}

// onNetwork runs fn (an ADD) on network cni: beside other attaches once
// the network is up, alone for its first attach, which sets up berth's
// rules for it (rules) and lets the bridge plugin create the bridge and
// its address with no other ADD racing it.
func (m *Manager) onNetwork(cni string, rules *netRules, fn func() error) error {
	st := m.net(cni)
	st.rw.RLock()
	if st.ready {
		defer st.rw.RUnlock()
		return fn()
	}
	st.rw.RUnlock()
	st.rw.Lock()
	defer st.rw.Unlock()
	if !st.ready && rules != nil {
		if err := rules.ensure(); err != nil {
			return err
		}
	}
	if err := fn(); err != nil {
		return err
	}
	st.ready = true
	return nil
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
// address the request's overlaps (unset is every address), and returns
// that attachment.
func (m *Manager) checkPorts(req Request) (Attachment, error) {
	if len(req.Ports) == 0 {
		return Attachment{}, nil
	}
	all, err := m.List()
	if err != nil {
		return Attachment{}, err
	}
	for _, o := range all {
		if o.Namespace == req.Namespace && o.ID == req.ID {
			continue
		}
		for _, p := range req.Ports {
			for _, q := range o.Ports {
				if p.HostPort == q.HostPort && strings.EqualFold(p.Protocol, q.Protocol) &&
					(p.HostIP == "" || q.HostIP == "" || p.HostIP == q.HostIP) {
					return o, fmt.Errorf("host port %d/%s is already published by container %s/%s: %w",
						p.HostPort, strings.ToLower(p.Protocol), o.Namespace, o.ID, errdefs.ErrConflict)
				}
			}
		}
	}
	return Attachment{}, nil
}

// Detach removes a container from its network: DEL with the configuration
// it was added with, then its namespace and files, then its name from its
// peers' hosts files. No attachment is fine. Only marking the record
// "detaching" is done before Detach returns; the rest runs in the
// background (a container's delete does not wait for the plugins), tried
// again a few times if it fails, and finished by Recover after a crash. A
// later Attach of the container, or of a host port it held, waits for it.
func (m *Manager) Detach(ctx context.Context, ns, id string) error {
	// A detach of k already running in the background is this one: the
	// caller would only wait for plugins it does not wait for either (a
	// pod's stop detaches, its remove detaches again).
	m.mu.Lock()
	inBackground := m.detaching[key(ns, id)]
	m.mu.Unlock()
	if inBackground {
		return nil
	}
	release, err := m.acquire(ctx, key(ns, id))
	if err != nil {
		return err
	}
	a, err := m.readRecord(ns, id)
	if errdefs.IsNotFound(err) {
		// No record, but a namespace file may be left by a crash
		// between its creation and the record.
		defer release()
		return removeNetNS(m.NetNSPath(ns, id))
	}
	if err == nil && a.Phase != phaseDetaching {
		a.Phase = phaseDetaching
		err = m.writeRecord(a)
	}
	if err != nil {
		release()
		return err
	}
	m.bg.Add(1)
	m.mu.Lock()
	m.detaching[key(ns, id)] = true
	m.mu.Unlock()
	go func() {
		defer m.bg.Done()
		defer release()
		defer func() {
			m.mu.Lock()
			delete(m.detaching, key(ns, id))
			m.mu.Unlock()
		}()
		ctx := context.WithoutCancel(ctx)
		for try, wait := 1, 100*time.Millisecond; ; try, wait = try+1, wait*4 {
			err := m.detach(ctx, a)
			if err == nil {
				return
			}
			if try == 3 {
				m.log.Error("detach a container's network; berthd tries again at its next start", "container", key(ns, id), "err", err)
				return
			}
			m.log.Warn("detach a container's network; trying again", "container", key(ns, id), "err", err, "in", wait)
			time.Sleep(wait)
		}
	}()
	return nil
}

// Close waits, at most until ctx ends, for the detaches running in the
// background; what is left is finished by Recover at the next start.
func (m *Manager) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { m.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("network: detaches still running: %w", ctx.Err())
	}
}

// detach undoes an attachment; the caller holds its container's claim.
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
	st := m.net(a.CNIName)
	st.rw.RLock()
	var unlock func()
	if len(a.Ports) > 0 {
		// portmap's DEL changes the host's shared chains: not while a
		// cleanup reads them to delete rules by number.
		unlock = lockHostRules()
	}
	err := m.del(ctx, a.Conflist, m.runtimeConf(a))
	if unlock != nil {
		unlock()
	}
	st.rw.RUnlock()
	// Whatever DEL did, what it can leave in the firewall goes; a DEL that
	// failed is retried (the record stays "detaching").
	if sweepNeeded(a.Conflist, len(a.Ports) > 0) {
		m.purgeRules(a)
	}
	if err != nil {
		return fmt.Errorf("network %s: detach %s/%s: %w", a.Network, a.Namespace, a.ID, err)
	}
	if err := removeNetNS(a.NetNS); err != nil {
		return err
	}
	m.mu.Lock()
	err = m.removeRecord(key(a.Namespace, a.ID))
	m.refreshPeers(a.CNIName, "")
	m.mu.Unlock()
	if err != nil {
		return err
	}
	m.emptied(a)
	return nil
}

// del runs CNI DEL of a conflist. A namespace already gone is passed as
// none: the plugins then release what lives outside it (leases, iptables
// rules), which is what DEL after a reboot needs.
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
	// The loopback plugin's cache entry of an attachment an older berthd
	// made: lo goes with the namespace, nothing else to undo.
	_ = os.Remove(filepath.Join(m.cacheDir(), "results", loopbackName+"-"+rt.ContainerID+"-"+rt.IfName))
	return nil
}

// Recover, at start, detaches what a crash left half done and what no
// container owns any more (exists says which containers exist), removes
// namespace files no record names, and releases cached attachments with
// no record (what a reboot left: leases and rules outlive the tmpfs state).
func (m *Manager) Recover(ctx context.Context, exists func(ns, id string) bool) error {
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
		release, err := m.acquire(ctx, key(a.Namespace, a.ID))
		if err != nil {
			return err
		}
		if err := m.detach(ctx, a); err != nil {
			errs = append(errs, err)
		}
		release()
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
				errs = append(errs, m.removeRecord(e.Name()))
			}
		}
	}
	cached, err := m.cni.GetCachedAttachments("")
	if err != nil {
		errs = append(errs, err)
	}
	for _, c := range cached {
		if known[c.ContainerID] || c.Network == loopbackName {
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
	m.pruneNetworks()
	m.cleanupFirewall()
	return errors.Join(errs...)
}

// InUse lists the containers ("ns/id") attached to a container network
// name of namespace ns; one being detached in the background is not
// (it is on its way out; RemoveNetwork waits for it).
func (m *Manager) InUse(ns, name string) []string {
	all, _ := m.List()
	cni := CNIName(ns, name)
	var out []string
	for _, a := range all {
		if a.CNIName == cni && !m.leaving(a) {
			out = append(out, a.Namespace+"/"+a.ID)
		}
	}
	slices.Sort(out)
	return out
}

// leaving reports whether a is being detached in the background.
func (m *Manager) leaving(a Attachment) bool {
	if a.Phase != phaseDetaching {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, busy := m.ops[key(a.Namespace, a.ID)]
	return busy
}

// waitLeaving waits for the background detaches of network cni's
// containers.
func (m *Manager) waitLeaving(ctx context.Context, cni string) error {
	all, _ := m.List()
	for _, a := range all {
		if a.CNIName != cni || a.Phase != phaseDetaching {
			continue
		}
		m.mu.Lock()
		ch, busy := m.ops[key(a.Namespace, a.ID)]
		m.mu.Unlock()
		if !busy {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
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
