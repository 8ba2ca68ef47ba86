package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/internal/span"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
)

// Observer is told what the controllers do (metrics); every method may be
// called concurrently.
type Observer interface {
	Reconciled(kind spec.Kind, d time.Duration, result string)
	QueueDepth(kind spec.Kind, n int)
	DriftRepaired(kind spec.Kind)
	Objects(kind spec.Kind, desired, ready int)
}

// ProbeObserver is told of health probes, when the Observer is one too.
type ProbeObserver interface {
	// Probed: one run of a probe (liveness, readiness, startup) with a
	// handler (exec, httpGet, tcpSocket), its result and latency.
	Probed(probe, handler string, ok bool, d time.Duration)
	// Unhealthy: a failing liveness or startup probe stopped a task.
	Unhealthy()
}

type nopObserver struct{}

func (nopObserver) Reconciled(spec.Kind, time.Duration, string) {}
func (nopObserver) QueueDepth(spec.Kind, int)                   {}
func (nopObserver) DriftRepaired(spec.Kind)                     {}
func (nopObserver) Objects(spec.Kind, int, int)                 {}

// Node is what the reconcilers do to the node: make images present,
// containers exist and tasks run. It is the whole of their reach into the
// node (records and statuses they read from observed.DB), so a unit test
// fakes only this.
type Node interface {
	node.Images
	node.Containers
	node.Tasks
	node.Snapshots
}

// Options configure the controllers.
type Options struct {
	Desired *desired.Store
	Node    Node
	// Networks writes and removes declared Networks; nil leaves them
	// Degraded (no CNI networking on this node).
	Networks Networks
	DB       *observed.DB
	Bus      *observed.Bus
	Log      *slog.Logger
	Observer Observer
	// Resync is how often every object is reconciled again (drift repair).
	Resync time.Duration
	// MaxBackoff caps retry and restart delays.
	MaxBackoff time.Duration
	// Workers reconcile keys in parallel (never the same key twice at once).
	Workers int
	// OnReady is called once, after every source was read and every object
	// declared then was reconciled once.
	OnReady func()
}

// Controller runs the image, container and task reconcilers.
type Controller struct {
	opts  Options
	log   *slog.Logger
	queue *Queue[spec.Key]

	mu       sync.Mutex
	restarts map[spec.Key]*restartState // task restart bookkeeping
	pending  map[spec.Key]bool          // keys to reconcile before ready
	ready    bool
	lastPull map[spec.Key]lastPull // of Images, for pullPolicy Always
	probers  map[spec.Key]*prober  // of Tasks whose task runs with probes
	// runCtx is Run's: probers live as long as the controller, not as
	// long as the reconcile that started them.
	runCtx context.Context
	// heldReady is since when a Container moved by an image update has
	// been Ready (autoupdate.go).
	heldReady map[string]time.Time
}

// New returns a controller; call Run.
func New(opts Options) *Controller {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Minute
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.Workers <= 0 {
		// Steps mostly wait on shims and runc; stopping a task may wait its
		// whole stop timeout, so a few more workers than cores.
		opts.Workers = 8
	}
	return &Controller{
		opts: opts, log: opts.Log,
		queue:    NewQueue[spec.Key](500*time.Millisecond, opts.MaxBackoff),
		restarts: map[spec.Key]*restartState{},
		lastPull: map[spec.Key]lastPull{},
		probers:  map[spec.Key]*prober{},
		runCtx:   context.Background(),
	}
}

// Run reconciles until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	c.runCtx = ctx
	// Changes go straight into the one coalescing queue: the store calls
	// back, so no second queue sits between a change and its reconcile.
	c.opts.Desired.Watch(ctx, func(keys []spec.Key) {
		for _, k := range keys {
			c.enqueueWithDependents(k)
		}
		c.reportQueue()
	})
	exits := c.opts.Bus.Subscribe(ctx, mustFilter("topic==/tasks/exit", "topic==/tasks/delete"))
	var wg sync.WaitGroup
	for i := 0; i < c.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.queue.run(ctx, c.process)
		}()
	}
	c.resync(ctx)
	ticker := time.NewTicker(c.opts.Resync)
	defer ticker.Stop()
	// Every source's first read is signalled: then orphans may be torn
	// down, and readiness can be judged (an empty directory sends no
	// change, yet its first read is what readiness waits for).
	synced := c.opts.Desired.WhenSynced()
	for {
		select {
		case <-synced:
			synced = nil // once
			c.resync(ctx)
		case <-ctx.Done():
			c.queue.ShutDown()
			wg.Wait()
			c.stopAllProbers()
			return
		case ev := <-exits:
			c.onTaskEvent(ev)
		case <-ticker.C:
			c.resync(ctx)
		}
		c.reportQueue()
	}
}

func mustFilter(exprs ...string) observed.Filter {
	f, err := observed.ParseFilters(exprs...)
	if err != nil {
		panic(err)
	}
	return f
}

// resync queues every declared object and every object with a status.
func (c *Controller) resync(ctx context.Context) {
	entries := c.opts.Desired.List(desired.Filter{})
	keys := map[spec.Key]bool{}
	for _, e := range entries {
		keys[e.Key] = true
	}
	if sts, err := c.opts.DB.ListStatuses(ctx, "", ""); err == nil {
		for _, st := range sts {
			keys[st.Key] = true
		}
	}
	c.mu.Lock()
	if c.pending == nil && !c.ready && c.opts.Desired.Synced() {
		c.pending = map[spec.Key]bool{}
		for _, e := range entries {
			c.pending[e.Key] = true
		}
	}
	c.mu.Unlock()
	for k := range keys {
		c.queue.Add(k)
	}
	c.countObjects(ctx)
	c.checkReady()
}

// onTaskEvent queues the Task objects running the container that exited.
func (c *Controller) onTaskEvent(ev observed.Event) {
	var p struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(ev.Payload, &p) != nil || p.ID == "" {
		return
	}
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: ev.Namespace, Kind: spec.KindTask}) {
		if ts, ok := e.Object.TaskSpec(); ok && ts.Container == p.ID {
			c.queue.Add(e.Key)
		}
	}
}

// enqueueWithDependents queues key and the objects that reference it.
func (c *Controller) enqueueWithDependents(key spec.Key) {
	c.queue.Add(key)
	for _, k := range c.dependents(key) {
		c.queue.Add(k)
	}
}

// dependents are the Containers using an Image and the Tasks of those
// Containers (or of a Container).
func (c *Controller) dependents(key spec.Key) []spec.Key {
	var out []spec.Key
	names := map[string]bool{}
	switch key.Kind {
	case spec.KindImage:
		for _, e := range c.opts.Desired.List(desired.Filter{Namespace: key.Namespace, Kind: spec.KindContainer}) {
			if cs, ok := e.Object.ContainerSpec(); ok && cs.Image == key.Name {
				out = append(out, e.Key)
				names[e.Key.Name] = true
			}
		}
	case spec.KindContainer:
		names[key.Name] = true
	case spec.KindNetwork:
		for _, e := range c.opts.Desired.List(desired.Filter{Namespace: key.Namespace, Kind: spec.KindContainer}) {
			if cs, ok := e.Object.ContainerSpec(); ok && string(cs.Network) == key.Name {
				out = append(out, e.Key)
				names[e.Key.Name] = true
			}
		}
	case spec.KindTask:
		// The Tasks that wait for it (dependsOn).
		return c.taskDependents(key.Namespace, key.Name)
	default:
		return nil
	}
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: key.Namespace, Kind: spec.KindTask}) {
		if ts, ok := e.Object.TaskSpec(); ok && names[ts.Container] {
			out = append(out, e.Key)
		}
	}
	return out
}

// process reconciles one key and schedules what follows.
func (c *Controller) process(ctx context.Context, key spec.Key) {
	start := time.Now()
	// The node's steps (create, shim start, runtime) are recorded as for
	// an API call and logged at debug on one "spans" line.
	rec := span.New()
	ctx = span.With(ctx, rec)
	defer span.Log(ctx, c.log, rec, "method", "reconcile", "object", key.String())
	res, err := c.safeReconcile(ctx, key)
	result := "success"
	switch {
	case err != nil:
		result = "error"
		d := c.queue.Retry(key)
		c.log.Warn("reconcile failed", "object", key.String(), "err", err, "retryIn", d.Round(time.Millisecond))
	case res.RequeueAfter > 0:
		result = "requeue"
		c.queue.Forget(key)
		c.queue.AddAfter(key, res.RequeueAfter)
	default:
		c.queue.Forget(key)
	}
	took := time.Since(start)
	c.log.Debug("reconciled", "object", key.String(), "result", result, "took", took)
	c.opts.Observer.Reconciled(key.Kind, took, result)
	if res.Changed {
		for _, k := range c.dependents(key) {
			c.queue.Add(k)
		}
	}
	c.mu.Lock()
	if c.pending != nil {
		delete(c.pending, key)
	}
	c.mu.Unlock()
	c.checkReady()
}

func (c *Controller) checkReady() {
	c.mu.Lock()
	fire := !c.ready && c.pending != nil && len(c.pending) == 0
	if fire {
		c.ready = true
	}
	c.mu.Unlock()
	if fire && c.opts.OnReady != nil {
		c.log.Info("every source read and reconciled once: ready")
		c.opts.OnReady()
	}
}

// Result says what follows a reconcile.
type Result struct {
	// RequeueAfter asks for a timed recheck.
	RequeueAfter time.Duration
	// Changed says the object's readiness changed, so its dependents are
	// reconciled too.
	Changed bool
}

// safeReconcile is reconcile with a panic turned into an error: one bad
// object is logged with its key and retried with backoff, and the other
// objects (and berthd) go on.
func (c *Controller) safeReconcile(ctx context.Context, key spec.Key) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("reconcile panicked", "object", key.String(), "panic", r, "stack", string(debug.Stack()))
			res, err = Result{}, fmt.Errorf("reconcile %s panicked: %v", key, r)
		}
	}()
	return c.reconcile(ctx, key)
}

// reconcile dispatches by kind; a key with no desired entry is torn down.
func (c *Controller) reconcile(ctx context.Context, key spec.Key) (Result, error) {
	entry, ok := c.opts.Desired.Get(key)
	if !ok {
		if !c.opts.Desired.Synced() {
			return Result{}, nil // never delete before every source was read
		}
		return c.teardown(ctx, key)
	}
	switch key.Kind {
	case spec.KindImage:
		return c.reconcileImage(ctx, entry)
	case spec.KindContainer:
		return c.reconcileContainer(ctx, entry)
	case spec.KindTask:
		return c.reconcileTask(ctx, entry)
	case spec.KindNetwork:
		return c.reconcileNetwork(ctx, entry)
	}
	return Result{}, nil
}

func (c *Controller) reportQueue() {
	counts := c.queue.CountBy(func(k spec.Key) string { return string(k.Kind) })
	for _, kind := range spec.Kinds {
		c.opts.Observer.QueueDepth(kind, counts[string(kind)])
	}
}

// countObjects reports desired versus ready objects per kind.
func (c *Controller) countObjects(ctx context.Context) {
	for _, kind := range spec.Kinds {
		entries := c.opts.Desired.List(desired.Filter{Kind: kind})
		ready := 0
		for _, e := range entries {
			if st, err := c.opts.DB.GetStatus(ctx, e.Key); err == nil {
				if cond, ok := st.Status.Condition(spec.ConditionReady); ok && cond.Status == spec.ConditionTrue {
					ready++
				}
			}
		}
		c.opts.Observer.Objects(kind, len(entries), ready)
	}
}

// Reconcile reconciles one key now, outside the queue: tests and tools
// drive the reconcilers step by step with it. A panic is an error, as in
// the queue's workers.
func (c *Controller) Reconcile(ctx context.Context, key spec.Key) (Result, error) {
	return c.safeReconcile(ctx, key)
}
