package network

import (
	"berth.dev/berth/internal/atomicfile"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
)

// BuiltinNetwork is the network every namespace has without declaring it.
const BuiltinNetwork = "bridge"

// Defaults of the built-in network. 10.88.0.0/16 is podman's default and
// 10.4.0.0/24 nerdctl's: berth takes a /16 neither uses, so the three can
// run on one host.
const (
	DefaultBridge  = "berth0"
	DefaultSubnet  = "10.87.0.0/16"
	builtinCNIName = "berth"
	ifName         = "eth0"
)

// Options configure a Manager.
type Options struct {
	// BinDirs are searched for plugins (default /usr/lib/cni).
	BinDirs []string
	// ConfDir holds conflists: the ones berth writes and a user's own.
	ConfDir string
	// Root is berth's root: cni/cache and cni/networks (the IPAM leases)
	// live under it.
	Root string
	// State is berth's state directory: network/ holds the namespaces and
	// the attachment records.
	State string
	// Bridge and Subnet are the built-in network's (DefaultBridge,
	// DefaultSubnet when empty).
	Bridge, Subnet string
	// ResolvConf is the host's resolver file (default /etc/resolv.conf).
	ResolvConf string
	Log        *slog.Logger
}

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Request asks for a container's attachment.
type Request struct {
	Namespace, ID string
	// Network is the name the container gave: BuiltinNetwork, a declared
	// Network of its namespace, or the name of a conflist in ConfDir.
	Network  string        `json:"network"`
	Hostname string        `json:"hostname,omitempty"`
	Ports    []PortMapping `json:"ports,omitempty"`
	DNS      DNS           `json:"dns,omitzero"`
	Hosts    []Host        `json:"hosts,omitempty"`
}

// Phases of an attachment record.
const (
	phaseAttaching = "attaching"
	phaseAttached  = "attached"
	phaseDetaching = "detaching"
)

// Attachment is a container's place on a network.
type Attachment struct {
	Namespace string        `json:"namespace"`
	ID        string        `json:"id"`
	Network   string        `json:"network"`
	CNIName   string        `json:"cniName"`
	Phase     string        `json:"phase"`
	Request   Request       `json:"request"`
	NetNS     string        `json:"netns"`
	IPs       []string      `json:"ips,omitempty"`
	Gateway   string        `json:"gateway,omitempty"`
	MAC       string        `json:"mac,omitempty"`
	HostVeth  string        `json:"hostVeth,omitempty"`
	Ports     []PortMapping `json:"ports,omitempty"`
	// Conflist is the configuration ADD ran with, so DEL runs with the
	// same one even after the network's file is gone.
	Conflist json.RawMessage `json:"conflist"`
}

// IP is the attachment's first address without its prefix length.
func (a Attachment) IP() string {
	if len(a.IPs) == 0 {
		return ""
	}
	ip, _, _ := strings.Cut(a.IPs[0], "/")
	return ip
}

// Manager attaches containers to networks. It is safe for concurrent use.
type Manager struct {
	opts Options
	log  *slog.Logger
	cni  *libcni.CNIConfig
	// mu guards what spans containers: a port check and the record it
	// admits, the peers' hosts files, whether a network is left empty;
	// and ops and nets. Plugins never run under it: attaches of
	// different containers run their plugins side by side (host-local
	// has its own lock on the IPAM directory).
	mu sync.Mutex
	// ops has a channel for each container with an attach or detach in
	// progress, closed when it ends: one operation per container at a
	// time, and a detach left to the background is waited for by the
	// next attach of that container or of its host ports.
	ops map[string]chan struct{}
	// detaching holds the containers whose detach runs in the background:
	// another Detach of one of them is that same detach, not waited for.
	detaching map[string]bool
	nets      map[string]*netState
	// bg counts the detaches running in the background (Close waits).
	bg sync.WaitGroup
	// recMu guards records, the attachment records as on disk (nil
	// until first read).
	recMu   sync.Mutex
	records map[string]Attachment
}

// netState is what a Manager knows of one CNI network. Attaches take rw
// for reading; the first attach to a network takes it for writing, so
// the bridge and berth's rules for it are made by one attach alone, and
// so does the removal of an emptied network's bridge.
type netState struct {
	rw    sync.RWMutex
	ready bool
}

// New returns a Manager; it creates the directories it owns.
func New(opts Options) (*Manager, error) {
	if len(opts.BinDirs) == 0 {
		opts.BinDirs = []string{"/usr/lib/cni"}
	}
	if opts.Bridge == "" {
		opts.Bridge = DefaultBridge
	}
	if opts.Subnet == "" {
		opts.Subnet = DefaultSubnet
	}
	if opts.ResolvConf == "" {
		opts.ResolvConf = "/etc/resolv.conf"
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Root == "" || opts.State == "" || opts.ConfDir == "" {
		return nil, fmt.Errorf("network: root, state and conf dir are required: %w", errdefs.ErrInvalidArgument)
	}
	m := &Manager{opts: opts, log: opts.Log, ops: map[string]chan struct{}{}, detaching: map[string]bool{}, nets: map[string]*netState{}}
	if err := m.migrateLayout(); err != nil {
		return nil, err
	}
	for _, d := range []string{m.cacheDir(), m.IPAMDir(), m.netnsDir(), m.containersDir(), opts.ConfDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: create %s: %w", d, err)
		}
	}
	m.cni = libcni.NewCNIConfigWithCacheDir(opts.BinDirs, m.cacheDir(), nil)
	if err := m.writeBuiltin(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) cacheDir() string { return filepath.Join(m.opts.Root, "cni", "cache") }

// stateDirName is berth's network directory in the state directory. It
// starts with a dot, which no namespace can (they are DNS-1123 labels),
// so it never collides with a namespace's task bundles (<state>/<ns>/<id>):
// the layout before it, <state>/network, was the bundle directory of a
// namespace named "network".
const stateDirName = ".network"

func (m *Manager) netnsDir() string { return filepath.Join(m.opts.State, stateDirName, "netns") }
func (m *Manager) containersDir() string {
	return filepath.Join(m.opts.State, stateDirName, "containers")
}

// IPAMDir is where host-local keeps the leases of berth's networks.
func (m *Manager) IPAMDir() string { return filepath.Join(m.opts.Root, "cni", "networks") }

// NetNSDir is the directory of the namespace files.
func (m *Manager) NetNSDir() string { return m.netnsDir() }

func key(ns, id string) string { return ns + "." + id }

// NetNSPath is the namespace file of a container: stable, so the OCI spec
// can name it before the namespace exists.
func (m *Manager) NetNSPath(ns, id string) string { return filepath.Join(m.netnsDir(), key(ns, id)) }

// FilesDir holds a container's hosts, resolv.conf and hostname files.
func (m *Manager) FilesDir(ns, id string) string {
	return filepath.Join(m.containersDir(), key(ns, id))
}

func (m *Manager) recordPath(ns, id string) string {
	return filepath.Join(m.FilesDir(ns, id), "record.json")
}

// writeBuiltin writes the built-in network's conflist, so a user (or a
// CNI tool) sees it beside the others.
func (m *Manager) writeBuiltin() error {
	b, err := conflist(builtinCNIName, m.opts.Bridge, m.IPAMDir(), Spec{Subnet: m.opts.Subnet, IPMasq: true})
	if err != nil {
		return fmt.Errorf("network: built-in network %s: %w", m.opts.Subnet, err)
	}
	return writeFile(filepath.Join(m.opts.ConfDir, builtinCNIName+".conflist"), b)
}

// CNIName is the CNI network a container's network name stands for in
// namespace ns.
func CNIName(ns, name string) string {
	if name == BuiltinNetwork {
		return builtinCNIName
	}
	return "berth_" + ns + "_" + name
}

// loadConflist finds the conflist of a container's network: berth's own,
// else a user's conflist of that very name.
func (m *Manager) loadConflist(ns, name string) (*libcni.NetworkConfigList, error) {
	for _, n := range []string{CNIName(ns, name), name} {
		l, err := libcni.LoadNetworkConf(m.opts.ConfDir, n)
		if err == nil {
			return l, nil
		}
		var nf libcni.NotFoundError
		var none libcni.NoConfigsFoundError
		if !errors.As(err, &nf) && !errors.As(err, &none) {
			return nil, fmt.Errorf("network %s: %w", name, err)
		}
	}
	return nil, fmt.Errorf("network %q: no Network of that name in namespace %s and no conflist in %s: %w", name, ns, m.opts.ConfDir, errdefs.ErrNotFound)
}

// readRecord is a container's attachment record, from the cache of
// records (loaded from disk once: only this Manager writes them), so an
// attach that looks at every other record (ports, peers) reads no file.
func (m *Manager) readRecord(ns, id string) (Attachment, error) {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.loadRecords()
	a, ok := m.records[key(ns, id)]
	if !ok {
		return Attachment{}, fmt.Errorf("attachment of %s/%s: %w", ns, id, errdefs.ErrNotFound)
	}
	return a, nil
}

// loadRecords fills the cache from disk the first time; under recMu.
func (m *Manager) loadRecords() {
	if m.records != nil {
		return
	}
	m.records = map[string]Attachment{}
	ents, _ := os.ReadDir(m.containersDir())
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(m.containersDir(), e.Name(), "record.json"))
		if err != nil {
			if !os.IsNotExist(err) {
				m.log.Warn("unreadable attachment record", "container", e.Name(), "err", err)
			}
			continue
		}
		var a Attachment
		if err := json.Unmarshal(b, &a); err != nil {
			m.log.Warn("unreadable attachment record", "container", e.Name(), "err", err)
			continue
		}
		if a.Namespace == "" || key(a.Namespace, a.ID) != e.Name() {
			m.log.Warn("attachment record of another container", "dir", e.Name(), "container", key(a.Namespace, a.ID))
			continue
		}
		m.records[e.Name()] = a
	}
}

func (m *Manager) writeRecord(a Attachment) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	var c Attachment // the cache's own copy, sharing no slice with a
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.loadRecords()
	if err := writeFile(m.recordPath(a.Namespace, a.ID), b); err != nil {
		return err
	}
	m.records[key(a.Namespace, a.ID)] = c
	return nil
}

// removeRecord removes a container's record and files.
func (m *Manager) removeRecord(k string) error {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.loadRecords()
	delete(m.records, k)
	return os.RemoveAll(filepath.Join(m.containersDir(), k))
}

// writeFile writes data so that a crash leaves the old file or the new
// one (atomicfile), making its directory first.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data)
}

// List returns every attachment record, in any phase, by container.
func (m *Manager) List() ([]Attachment, error) {
	m.recMu.Lock()
	defer m.recMu.Unlock()
	m.loadRecords()
	out := make([]Attachment, 0, len(m.records))
	for _, a := range m.records {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Attachment) int { return strings.Compare(key(a.Namespace, a.ID), key(b.Namespace, b.ID)) })
	return out, nil
}

// Get returns a container's attachment.
func (m *Manager) Get(ns, id string) (Attachment, error) { return m.readRecord(ns, id) }
