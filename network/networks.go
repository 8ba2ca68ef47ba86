package network

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// Network is a network as berth has written it.
type Network struct {
	// Name is the container-facing name (BuiltinNetwork or a Network's).
	Name, Namespace string
	CNIName         string
	Bridge          string
	Spec            Spec
	File            string
}

func (m *Manager) confPath(cniName string) string {
	return filepath.Join(m.opts.ConfDir, cniName+".conflist")
}

// Builtin is the built-in network.
func (m *Manager) Builtin() Network {
	return Network{Name: BuiltinNetwork, CNIName: builtinCNIName, Bridge: m.opts.Bridge,
		Spec: Spec{Subnet: m.opts.Subnet, IPMasq: true, Driver: DriverBridge}, File: m.confPath(builtinCNIName)}
}

// EnsureNetwork writes the conflist of Network name in namespace ns (a
// rewrite of an unchanged one changes nothing) and its isolation rules.
// Containers already attached keep the configuration they were added with
// until they are attached again.
func (m *Manager) EnsureNetwork(ns, name string, s Spec) (Network, error) {
	if name == BuiltinNetwork {
		return Network{}, fmt.Errorf("network %q is built in: %w", name, errdefs.ErrInvalidArgument)
	}
	cni := CNIName(ns, name)
	n := Network{Name: name, Namespace: ns, CNIName: cni, Spec: s, File: m.confPath(cni)}
	if s.Driver == "" || s.Driver == DriverBridge {
		n.Bridge = BridgeName(cni)
	}
	b, err := conflist(cni, n.Bridge, m.IPAMDir(), s)
	if err != nil {
		return Network{}, fmt.Errorf("network %s/%s: %w", ns, name, err)
	}
	if old, err := os.ReadFile(n.File); err != nil || !bytes.Equal(old, b) {
		// An attach reads the conflist whole or not at all (atomicfile).
		if err := writeFile(n.File, b); err != nil {
			return Network{}, fmt.Errorf("network %s/%s: write conflist: %w", ns, name, err)
		}
	}
	// Outside mu: these iptables runs (a reconcile of the Network makes
	// them again) must not hold up the attaches' port checks.
	if n.Bridge != "" {
		if err := setIsolation(n.Bridge, s.Isolate); err != nil {
			return Network{}, fmt.Errorf("network %s/%s: %w", ns, name, err)
		}
	}
	return n, nil
}

// RemoveNetwork removes a declared network's conflist, isolation rules,
// bridge and IPAM directory. A network containers are attached to is
// errdefs.ErrFailedPrecondition naming them; an absent one is fine.
func (m *Manager) RemoveNetwork(ns, name string) error {
	cni := CNIName(ns, name)
	// The containers detached just before are given the time to leave.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.waitLeaving(ctx, cni); err != nil {
		return fmt.Errorf("network %s/%s: waiting for its containers' detaches: %w", ns, name, err)
	}
	if used := m.InUse(ns, name); len(used) > 0 {
		return fmt.Errorf("network %s/%s is in use by container %s: %w", ns, name, strings.Join(used, ", "), errdefs.ErrFailedPrecondition)
	}
	st := m.net(cni)
	st.rw.Lock()
	defer st.rw.Unlock()
	st.ready = false
	br := BridgeName(cni)
	if err := setIsolation(br, false); err != nil {
		return err
	}
	netRules{cni: cni, bridge: br}.remove()
	if err := deleteLink(br); err != nil {
		return err
	}
	m.removeIPAMDir(cni)
	if err := os.Remove(m.confPath(cni)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("network %s/%s: remove conflist: %w", ns, name, err)
	}
	return nil
}

// Networks lists the conflists berth wrote: the built-in one and declared
// Networks (their specs as read back from the file).
func (m *Manager) Networks() ([]Network, error) {
	out := []Network{m.Builtin()}
	ents, err := os.ReadDir(m.opts.ConfDir)
	if err != nil {
		return out, err
	}
	for _, e := range ents {
		cni, ok := strings.CutSuffix(e.Name(), ".conflist")
		if !ok || !strings.HasPrefix(cni, "berth_") {
			continue
		}
		ns, name, ok := strings.Cut(strings.TrimPrefix(cni, "berth_"), "_")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(m.opts.ConfDir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, Network{Name: name, Namespace: ns, CNIName: cni, Bridge: bridgeOf(b), Spec: specOf(b), File: filepath.Join(m.opts.ConfDir, e.Name())})
	}
	return out, nil
}

// specOf reads the parts of a Spec back from a conflist berth wrote.
func specOf(b []byte) Spec {
	var c struct {
		Plugins []struct {
			Type   string `json:"type"`
			IPMasq bool   `json:"ipMasq"`
			MTU    int    `json:"mtu"`
			Master string `json:"master"`
			IPAM   struct {
				Ranges [][]struct {
					Subnet  string `json:"subnet"`
					Gateway string `json:"gateway"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	var s Spec
	if json.Unmarshal(b, &c) != nil || len(c.Plugins) == 0 {
		return s
	}
	p := c.Plugins[0]
	s.Driver, s.IPMasq, s.MTU, s.Master = p.Type, p.IPMasq, p.MTU, p.Master
	if len(p.IPAM.Ranges) > 0 && len(p.IPAM.Ranges[0]) > 0 {
		s.Subnet, s.Gateway = p.IPAM.Ranges[0][0].Subnet, p.IPAM.Ranges[0][0].Gateway
	}
	return s
}

// Stats are a container's network counters, as the container sees them.
type Stats struct {
	RxBytes, TxBytes uint64
}

// Stats reads a container's counters from the host side of its veth
// (what the host receives the container sent).
func (m *Manager) Stats(ns, id string) (Stats, error) {
	a, err := m.readRecord(ns, id)
	if err != nil {
		return Stats{}, err
	}
	if a.HostVeth == "" {
		return Stats{}, fmt.Errorf("container %s/%s has no host interface: %w", ns, id, errdefs.ErrNotFound)
	}
	read := func(f string) (uint64, error) {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", a.HostVeth, "statistics", f))
		if err != nil {
			return 0, err
		}
		return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	hostRx, err := read("rx_bytes")
	if err != nil {
		return Stats{}, err
	}
	hostTx, err := read("tx_bytes")
	if err != nil {
		return Stats{}, err
	}
	return Stats{RxBytes: hostTx, TxBytes: hostRx}, nil
}
