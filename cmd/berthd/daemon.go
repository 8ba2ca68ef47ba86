package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	ctrapi "berth.dev/berth/api/containers/v1"
	contentapi "berth.dev/berth/api/content/v1"
	diffapi "berth.dev/berth/api/diff/v1"
	eventsapi "berth.dev/berth/api/events/v1"
	imagesapi "berth.dev/berth/api/images/v1"
	introapi "berth.dev/berth/api/introspection/v1"
	leasesapi "berth.dev/berth/api/leases/v1"
	manifestsapi "berth.dev/berth/api/manifests/v1"
	nsapi "berth.dev/berth/api/namespaces/v1"
	netapi "berth.dev/berth/api/networks/v1"
	rolloutapi "berth.dev/berth/api/rollout/v1"
	"berth.dev/berth/api/server"
	snapi "berth.dev/berth/api/snapshots/v1"
	tasksapi "berth.dev/berth/api/tasks/v1"
	"berth.dev/berth/content"
	"berth.dev/berth/content/local"
	"berth.dev/berth/content/remote"
	"berth.dev/berth/metrics"
	"berth.dev/berth/network"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/btrfs"
	"berth.dev/berth/snapshot/native"
	"berth.dev/berth/snapshot/overlay"
	"berth.dev/berth/snapshot/unpack"
	"berth.dev/berth/spec"
	"github.com/containerd/ttrpc"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// Daemon is one running berthd: its stores, services and listeners.
type Daemon struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File
	db   *bolt.DB
	obs  *observed.DB
	bus  *observed.Bus
	node *node.Node
	// blobs is the content store node was built over: the content API and
	// the metrics read it directly (node offers no escape hatch to it).
	blobs content.Store
	// net attaches containers to CNI networks (the node and the CRI use it).
	net     *network.Manager
	started time.Time
	closers []func() error
	// reg and metrics are this daemon's own (cmd/berthd/observe.go).
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	// ready gates /readyz; see setReady (cmd/berthd/http.go).
	ready atomic.Bool
	// controllerReadiness, when true, leaves setReady to the controller;
	// otherwise Run sets ready as soon as the API serves.
	controllerReadiness bool
	// decl is the desired state and the controllers (declarative.go).
	decl *declarative
}

// NewDaemon takes the root's lock and opens the stores. A second berthd on
// the same root fails here instead of corrupting the first one's state.
func NewDaemon(ctx context.Context, cfg Config, log *slog.Logger) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, started: time.Now()}
	for _, dir := range []string{cfg.Root, cfg.State} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, err
		}
	}
	d.cfg.Snapshotter = resolveSnapshotter(d.cfg, log)
	if err := d.takeLock(); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(cfg.Root, "meta.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open %s: %w", filepath.Join(cfg.Root, "meta.db"), err)
	}
	d.db = db
	d.closers = append(d.closers, db.Close)
	if d.obs, err = observed.New(db); err != nil {
		d.Close()
		return nil, err
	}
	d.bus = observed.NewBus()
	d.initMetrics()
	if err := d.openStores(ctx); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.openDeclarative(); err != nil {
		d.Close()
		return nil, err
	}
	d.controllerReadiness = true
	return d, nil
}

// openStores opens the content store and the snapshotters and builds the
// node's operations over them.
func (d *Daemon) openStores(ctx context.Context) error {
	cs, err := local.NewStore(filepath.Join(d.cfg.Root, "content"))
	if err != nil {
		return fmt.Errorf("open content store: %w", err)
	}
	d.closers = append(d.closers, cs.Close)
	d.blobs = cs
	sns := map[string]snapshot.Snapshotter{}
	for name, open := range map[string]func(string) (snapshot.Snapshotter, error){
		"overlayfs": func(root string) (snapshot.Snapshotter, error) { return overlay.New(root) },
		"native":    func(root string) (snapshot.Snapshotter, error) { return native.New(root) },
		"btrfs":     func(root string) (snapshot.Snapshotter, error) { return btrfs.New(root) },
	} {
		// btrfs is offered only where it can work (or where it was asked
		// for, to fail with its reason).
		if name == "btrfs" && d.cfg.Snapshotter != name && !btrfs.Supported(d.cfg.Root) {
			continue
		}
		sn, err := open(filepath.Join(d.cfg.Root, "snapshots", name))
		if err != nil {
			if name == d.cfg.Snapshotter {
				return fmt.Errorf("open snapshotter %s: %w", name, err)
			}
			d.log.Warn("snapshotter unavailable", "name", name, "err", err)
			continue
		}
		d.closers = append(d.closers, sn.Close)
		// An unpack cut short by a crash is never committed; drop its rest.
		if err := unpack.CleanupStale(ctx, sn); err != nil {
			d.log.Warn("clean up interrupted unpacks", "snapshotter", name, "err", err)
		}
		sns[name] = sn
	}
	unpackOpts, err := d.cfg.Unpack.Options()
	if err != nil {
		return err
	}
	pol, err := d.cfg.NodePolicy()
	if err != nil {
		return err
	}
	d.net, err = network.New(network.Options{
		BinDirs: d.cfg.CNI.BinDirs(), ConfDir: d.cfg.CNI.ConfDir, Root: d.cfg.Root, State: d.cfg.State,
		Bridge: d.cfg.CNI.Bridge, Subnet: d.cfg.CNI.Subnet, Log: d.log.With("component", "network"),
	})
	if err != nil {
		return fmt.Errorf("open networks: %w", err)
	}
	// Closed after the node (closers run last first): detaches left to
	// the background finish, or are finished by the next start's Recover.
	d.closers = append(d.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.net.Close(ctx)
	})
	d.node = node.New(node.Options{
		Unpack:             unpackOpts,
		Policy:             pol,
		Content:            cs,
		Snapshotters:       sns,
		DefaultSnapshotter: d.cfg.NodeDefaults().Snapshotter,
		DB:                 d.obs,
		Events:             d.bus,
		Log:                d.log,
		InsecureRegistries: d.cfg.Registries.Insecure,
		RegistryConfigDir:  d.cfg.Registries.ConfigDir,
		PullRetry:          remote.RetryPolicy{Attempts: d.cfg.Pull.Retries, Max: d.cfg.Pull.MaxRetryWait.Duration},
		PullConcurrency:    d.cfg.Pull.Concurrency,
		ProgressTimeout:    d.cfg.Pull.ProgressTimeout.Duration,
		StaleIngestAge:     d.cfg.Content.StaleIngestAge.Duration,
		OnPull:             d.metrics.ObservePull,
		Network:            d.net,
		Tasks: node.TaskOptions{
			State: d.cfg.State, Root: d.cfg.Root, ShimBinary: shimBinary(d.cfg.Runtime.Shim), InitBinary: initBinary(d.cfg.Runtime.Init),
			DefaultRuntime: d.cfg.NodeDefaults().Runtime, Runtimes: d.cfg.Runtime.Runtimes,
			LogMaxSize: d.cfg.Runtime.LogMaxSize, LogMaxFiles: d.cfg.Runtime.LogMaxFiles,
		},
	})
	// Adopt the shims that outlived the last berthd before serving, and
	// stop watching them (never them) when this one stops.
	if err := d.node.RecoverTasks(ctx); err != nil {
		return err
	}
	// After the tasks: a running container's attachment is kept, and what
	// a crash left half attached is detached (its create or task is
	// retried by the controllers, and attaches again).
	if err := d.node.RecoverNetworks(ctx); err != nil {
		d.log.Warn("recover networks", "err", err)
	}
	if err := d.node.CleanupDiffViews(ctx); err != nil {
		d.log.Warn("clean up interrupted diffs", "err", err)
	}
	d.closers = append(d.closers, d.node.CloseTasks)
	// Drop what the last berthd's operations and expired leases held, then
	// keep collecting as leases expire; cancelled before CloseTasks waits.
	lctx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
	d.closers = append(d.closers, func() error { stopLeases(); return nil })
	if err := d.node.RecoverLeases(lctx); err != nil {
		return fmt.Errorf("recover leases: %w", err)
	}
	d.registerNodeCollector()
	return nil
}

// resolveSnapshotter picks the default snapshotter: the configured one;
// else btrfs when the root is on btrfs and is fresh (no overlayfs
// snapshotter yet: a node that ran overlayfs keeps it, since switching
// would recreate every container that relied on the default), a choice
// recorded in snapshots/default so later starts keep it; else overlayfs.
func resolveSnapshotter(cfg Config, log *slog.Logger) string {
	if cfg.SnapshotterGiven || cfg.Snapshotter != spec.DefaultSnapshotter {
		return cfg.Snapshotter
	}
	record := filepath.Join(cfg.Root, "snapshots", "default")
	if b, err := os.ReadFile(record); err == nil && strings.TrimSpace(string(b)) == "btrfs" {
		return "btrfs"
	}
	if !btrfs.Supported(cfg.Root) {
		return cfg.Snapshotter
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, "snapshots", "overlayfs")); err == nil {
		log.Info("root is on btrfs but already has the overlayfs snapshotter: keeping overlayfs as the default (set snapshotter: btrfs to change)")
		return cfg.Snapshotter
	}
	if err := os.MkdirAll(filepath.Dir(record), 0o700); err == nil {
		if err := os.WriteFile(record, []byte("btrfs\n"), 0o600); err != nil {
			log.Warn("record the default snapshotter", "err", err)
		}
	}
	log.Info("root is on btrfs: btrfs is the default snapshotter (set snapshotter: in the config to choose another)")
	return "btrfs"
}

func (d *Daemon) takeLock() error {
	path := filepath.Join(d.cfg.Root, "berthd.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("root %s is in use by another berthd (lock %s): %w", d.cfg.Root, path, err)
	}
	_ = f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	d.lock = f
	return nil
}

// Close releases everything NewDaemon and Run opened, in reverse order.
func (d *Daemon) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	d.closers = nil
	if d.lock != nil {
		errs = append(errs, d.lock.Close())
		d.lock = nil
	}
	return errors.Join(errs...)
}

// Run serves the API until ctx ends, then shuts down cleanly.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.Close()
	srv, err := ttrpc.NewServer(
		ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()),
		ttrpc.WithUnaryServerInterceptor(server.UnaryInterceptor(d.log, d.observeAPI)),
	)
	if err != nil {
		return err
	}
	d.register(srv)
	l, err := listenUnix(d.cfg.Address)
	if err != nil {
		return err
	}
	stopHTTP, err := d.serveHTTP()
	if err != nil {
		l.Close()
		return err
	}
	defer stopHTTP()
	stopCRI, err := d.serveCRI(ctx)
	if err != nil {
		l.Close()
		return err
	}
	defer stopCRI()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, l) }()
	sdNotify("READY=1")
	d.log.Info("berthd serving", "address", d.cfg.Address, "root", d.cfg.Root, "state", d.cfg.State, "pid", os.Getpid(), "startup", time.Since(d.started))
	if !d.controllerReadiness {
		d.setReady()
	}
	dctx, stopDeclarative := context.WithCancel(ctx)
	waitDeclarative := d.runDeclarative(dctx)
	// Runs before the deferred Close: the controllers stop first.
	defer func() { stopDeclarative(); waitDeclarative() }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve api: %w", err)
	}
	sdNotify("STOPPING=1")
	d.log.Info("berthd shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	_ = os.Remove(d.cfg.Address)
	return nil
}

func (d *Daemon) register(srv *ttrpc.Server) {
	nsapi.RegisterNamespacesService(srv, &server.Namespaces{DB: d.obs, Events: d.bus})
	introapi.RegisterIntrospectionService(srv, &server.Introspection{
		Root: d.cfg.Root, State: d.cfg.State, StartedAt: d.started, Snapshotters: d.node.SnapshotterNames(),
	})
	contentapi.RegisterContentService(srv, &server.Content{Store: d.blobs, Node: d.node})
	imagesapi.RegisterImagesService(srv, d.observeImages(&server.Images{Node: d.node, DB: d.obs}))
	snapi.RegisterSnapshotsService(srv, &server.Snapshots{Node: d.node, DB: d.obs, Events: d.bus})
	leasesapi.RegisterLeasesService(srv, &server.Leases{Node: d.node, DB: d.obs})
	diffapi.RegisterDiffService(srv, &server.Layers{Node: d.node})
	ctrapi.RegisterContainersService(srv, &server.Containers{Node: d.node, DB: d.obs})
	netapi.RegisterNetworksService(srv, &server.Networks{Manager: d.net})
	tasksapi.RegisterTasksService(srv, d.observeTasks(&server.Tasks{Node: d.node, Desired: d.decl.store, DB: d.obs}))
	eventsapi.RegisterEventsService(srv, d.observeEvents(d.eventsService()))
	manifests := &server.Manifests{
		Desired: d.decl.store, API: d.decl.api, DB: d.obs, Recent: d.decl.recent, Node: d.node, Snapshots: d.node,
	}
	manifestsapi.RegisterManifestsService(srv, manifests)
	rolloutapi.RegisterRolloutService(srv, &server.Rollout{Engine: d.decl.rollouts, Revisions: d.decl.revs, Manifests: manifests})
}

// listenUnix creates the API socket with mode 0600 from the start: the
// umask is narrowed around bind so no client can connect in between.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

// shimBinary finds the shim: a bare name is looked for next to berthd's
// own executable first (bin/ in a build tree, one install directory), then
// on PATH.
func shimBinary(name string) string {
	if name == "" {
		name = "berth-shim"
	}
	return findBinary(name)
}

// initBinary finds berth-init as shimBinary finds the shim, and makes it
// absolute (it is bind-mounted into containers); "" when it is nowhere,
// so a container asking for an init gets a clear error.
func initBinary(name string) string {
	if name == "" {
		name = "berth-init"
	}
	p, err := filepath.Abs(findBinary(name))
	if err != nil {
		return ""
	}
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return ""
	}
	return p
}

func findBinary(name string) string {
	if filepath.IsAbs(name) || filepath.Base(name) != name {
		return name
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}
