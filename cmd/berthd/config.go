package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/policy"
	"berth.dev/berth/snapshot/unpack"
	"berth.dev/berth/spec"

	"sigs.k8s.io/yaml"
)

// Config is berthd's configuration file (/etc/berth/config.yaml). Every
// path is also a flag, so a whole agent can run under a temporary directory.
type Config struct {
	Root      string `json:"root"`
	State     string `json:"state"`
	Address   string `json:"address"`
	Manifests string `json:"manifests"`
	// ManifestsGiven says the manifest directory was chosen (by flag or
	// by a config file naming a path other than the default): a chosen
	// directory that is missing keeps berthd unready, the default one
	// missing reads as empty.
	ManifestsGiven bool `json:"-"`
	// ManifestSettle is how long a manifest file must be quiet before it
	// is read when nothing says its writer is done (no close-after-write,
	// no rename into place).
	ManifestSettle Duration `json:"manifestSettle"`
	MetricsAddress string   `json:"metricsAddress"`
	LogLevel       string   `json:"logLevel"`
	// Snapshotter is the default snapshotter: overlayfs, native or btrfs.
	// Not configured, it is btrfs on a fresh root on btrfs (see
	// resolveSnapshotter), else overlayfs.
	Snapshotter string `json:"snapshotter"`
	// SnapshotterGiven says the config file named the snapshotter.
	SnapshotterGiven bool            `json:"-"`
	Registries       RegistryConfig  `json:"registries"`
	Pull             PullConfig      `json:"pull"`
	Runtime          RuntimeConfig   `json:"runtime"`
	Reconcile        ReconcileConfig `json:"reconcile"`
	Unpack           UnpackConfig    `json:"unpack"`
	Content          ContentConfig   `json:"content"`
	// Policy limits what the containers of each namespace may ask of the
	// host (package policy); by default no bind may reach berthd's own
	// root, state directory, socket or manifest directory, nor /.
	Policy policy.Config `json:"policy"`
	CNI    CNIConfig     `json:"cni"`
	CRI    CRIConfig     `json:"cri"`
	// Rollout: the watched directory as atomic revisions (rollout.go).
	Rollout RolloutConfig `json:"rollout"`
}

// CRIConfig is the kubelet's front door (cri/).
type CRIConfig struct {
	// Address is the CRI's unix socket (mode 0600); "" turns the CRI off.
	Address string `json:"address"`
	// SandboxImage is the pause image pods' sandboxes run; when it is not
	// on the node and cannot be pulled, berth's built-in pause is used.
	SandboxImage string `json:"sandboxImage"`
	// StreamAddress is where exec, attach and port-forward stream
	// (loopback; port 0 picks a free one).
	StreamAddress string `json:"streamAddress"`
}

// CNIConfig says where the CNI plugins and network configurations are, so
// berth can use the ones a Kubernetes node already has.
type CNIConfig struct {
	// BinDir is where the plugins are; a colon-separated list is searched
	// in order.
	BinDir string `json:"binDir"`
	// ConfDir holds the conflists: those berth writes (the built-in
	// network's, declared Networks') and a user's own.
	ConfDir string `json:"confDir"`
	// Bridge and Subnet are the built-in network's (berth0 on
	// 10.87.0.0/16 when empty): two berthds on one host need their own.
	Bridge string `json:"bridge,omitempty"`
	Subnet string `json:"subnet,omitempty"`
}

// BinDirs splits BinDir into the directories searched.
func (c CNIConfig) BinDirs() []string {
	var out []string
	for _, d := range filepath.SplitList(c.BinDir) {
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// ContentConfig tunes the content store.
type ContentConfig struct {
	// StaleIngestAge is how long an ingest (a download cut short) may go
	// unwritten before garbage collection removes it; berth content prune
	// removes every ingest not in use at once.
	StaleIngestAge Duration `json:"staleIngestAge"`
}

// UnpackConfig bounds what image layers may hold and what they may cost:
// an image is untrusted input, and an edge node's disk is all it has.
type UnpackConfig struct {
	// AllowDevices creates the block and character device nodes a layer
	// holds; by default they are skipped (and logged): runc mounts a fresh
	// /dev, and a device node elsewhere in an image is a way into the host.
	AllowDevices bool `json:"allowDevices"`
	// MaxLayerSize caps one layer's uncompressed size (files' declared
	// sizes included, so a sparse 1 TiB entry counts 1 TiB).
	MaxLayerSize spec.Quantity `json:"maxLayerSize"`
	// MaxImageSize caps the uncompressed size of the layers one unpack
	// applies.
	MaxImageSize spec.Quantity `json:"maxImageSize"`
	// FreeSpaceReserve is left free on the snapshot filesystem: a size
	// ("2Gi") or a percentage of it ("5%"); an unpack that would go under
	// it stops with an error before the disk is full. "0" turns it off.
	FreeSpaceReserve string `json:"freeSpaceReserve"`
}

// Options turns the configured bounds into unpack options, naming the key
// of any value it cannot read.
func (u UnpackConfig) Options() (unpack.Options, error) {
	opts := unpack.Options{AllowDevices: u.AllowDevices}
	var err error
	if opts.Limits.MaxSize, err = quantityBytes(u.MaxLayerSize); err != nil {
		return opts, fmt.Errorf("unpack.maxLayerSize: %w", err)
	}
	if opts.MaxImageSize, err = quantityBytes(u.MaxImageSize); err != nil {
		return opts, fmt.Errorf("unpack.maxImageSize: %w", err)
	}
	r := strings.TrimSpace(u.FreeSpaceReserve)
	if pct, ok := strings.CutSuffix(r, "%"); ok {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil || p < 0 || p >= 100 {
			return opts, fmt.Errorf("unpack.freeSpaceReserve: %q is not a percentage from 0 to 100", u.FreeSpaceReserve)
		}
		opts.FreeSpace.Percent = p
	} else {
		b, err := quantityBytes(spec.Quantity(r))
		if err != nil {
			return opts, fmt.Errorf("unpack.freeSpaceReserve: want a size (2Gi) or a percentage (5%%): %w", err)
		}
		opts.FreeSpace.Bytes = uint64(b)
	}
	return opts, nil
}

// quantityBytes reads a size; empty is 0 (the built-in default).
func quantityBytes(q spec.Quantity) (int64, error) {
	if q == "" {
		return 0, nil
	}
	v, err := q.Value()
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", string(q))
	}
	return v, nil
}

// RegistryConfig says how registries are reached.
type RegistryConfig struct {
	// ConfigDir is a containerd-style certs.d directory:
	// <host[:port]>/hosts.toml, _default/hosts.toml, *.crt, *.cert/*.key.
	ConfigDir string `json:"configDir"`
	// Insecure lists hosts allowed plain HTTP when HTTPS fails (as a
	// hosts.toml server of http://host would). Registries on loopback
	// fall back to plain HTTP without being listed.
	Insecure []string `json:"insecure"`
}

// PullConfig bounds pulls.
type PullConfig struct {
	// Concurrency is how many layers of one pull download at once.
	Concurrency int `json:"concurrency"`
	// ProgressTimeout is the idle timeout of each stage (resolve, each
	// manifest, each blob): a transfer with no byte for this long fails.
	ProgressTimeout Duration `json:"progressTimeout"`
	// Retries is how often a 429 or 5xx answer is retried (0: 5).
	Retries int `json:"retries"`
	// MaxRetryWait caps one wait between retries, Retry-After included.
	MaxRetryWait Duration `json:"maxRetryWait"`
}

// RuntimeConfig names the OCI runtimes and the shim.
type RuntimeConfig struct {
	Default  string            `json:"default"`
	Runtimes map[string]string `json:"runtimes"`
	Shim     string            `json:"shim"`
	// Init is berth-init, the PID 1 of containers with init: true (a bare
	// name is looked for next to berthd, then on PATH).
	Init        string `json:"init"`
	LogMaxSize  int64  `json:"logMaxSize"`
	LogMaxFiles int    `json:"logMaxFiles"`
}

// ReconcileConfig sets the controllers' timers.
type ReconcileConfig struct {
	Resync     Duration `json:"resync"`
	Relist     Duration `json:"relist"`
	MaxBackoff Duration `json:"maxBackoff"`
}

// Duration is a time.Duration written as "5m" in YAML.
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	d.Duration = v
	return nil
}

// NodeDefaults are the configured defaults, resolved once: the desired
// store fills them into manifests that name none, and the node into API
// requests (`berth run`) that name none.
func (c Config) NodeDefaults() spec.NodeDefaults {
	return spec.NodeDefaults{Snapshotter: c.Snapshotter, Runtime: c.Runtime.Default}
}

// NodePolicy compiles the policy section. berthd's own paths (root,
// state, sockets, manifest and CNI configuration directories) are the protected paths of an entry
// that names none, under their resolved names as well: berthd calls it
// once those directories exist.
func (c Config) NodePolicy() (*policy.Policy, error) {
	protected := []string{c.Root, c.State, c.Address}
	// The manifest directory, the CRI's socket and the CNI configurations
	// berth writes (and runs as root) are as good as the API socket.
	for _, p := range []string{c.Manifests, c.CRI.Address, c.CNI.ConfDir} {
		if p != "" {
			protected = append(protected, p)
		}
	}
	for i, p := range protected {
		if abs, err := filepath.Abs(p); err == nil {
			protected[i] = abs
		}
	}
	return policy.Compile(c.Policy, protected, filepath.EvalSymlinks)
}

// DefaultConfig is what berthd uses when no config file exists.
func DefaultConfig() Config {
	return Config{
		Root:           "/var/lib/berth",
		State:          "/run/berth",
		Address:        "/run/berth/berth.sock",
		Manifests:      "/etc/berth/manifests",
		ManifestSettle: Duration{2 * time.Second},
		MetricsAddress: "127.0.0.1:1338",
		LogLevel:       "info",
		Snapshotter:    spec.DefaultSnapshotter,
		Registries:     RegistryConfig{ConfigDir: "/etc/berth/certs.d"},
		Pull:           PullConfig{Concurrency: 3, ProgressTimeout: Duration{5 * time.Minute}, Retries: 5, MaxRetryWait: Duration{30 * time.Second}},
		Runtime: RuntimeConfig{
			Default:     spec.DefaultRuntime,
			Runtimes:    map[string]string{"runc": "runc", "crun": "crun"},
			Shim:        "berth-shim",
			Init:        "berth-init",
			LogMaxSize:  10 << 20,
			LogMaxFiles: 3,
		},
		Reconcile: ReconcileConfig{
			Resync:     Duration{time.Minute},
			Relist:     Duration{30 * time.Second},
			MaxBackoff: Duration{5 * time.Minute},
		},
		Unpack:  UnpackConfig{MaxLayerSize: "64Gi", MaxImageSize: "128Gi", FreeSpaceReserve: "2%"},
		Content: ContentConfig{StaleIngestAge: Duration{24 * time.Hour}},
		CNI:     CNIConfig{BinDir: "/usr/lib/cni", ConfDir: "/etc/berth/cni/net.d"},
		CRI:     CRIConfig{Address: "/run/berth/cri.sock", SandboxImage: "registry.k8s.io/pause:3.10", StreamAddress: "127.0.0.1:0"},
		Rollout: RolloutConfig{Timeout: Duration{time.Minute}, MinReady: Duration{time.Second}},
	}
}

// LoadConfig reads path over the defaults. A missing file is the defaults
// only when the path was not given explicitly.
func LoadConfig(path string, explicit bool) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) && !explicit {
			return cfg, nil
		}
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	var keys map[string]any
	if yaml.Unmarshal(data, &keys) == nil {
		_, cfg.SnapshotterGiven = keys["snapshotter"]
	}
	if cfg.Content.StaleIngestAge.Duration < 0 {
		return cfg, fmt.Errorf("config %s: content.staleIngestAge: %s is negative", path, cfg.Content.StaleIngestAge.Duration)
	}
	if _, err := cfg.Unpack.Options(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.Rollout.check(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if _, err := cfg.NodePolicy(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}
