package main

import (
	"context"
	"sync"
	"time"

	"berth.dev/berth/controller"
	"berth.dev/berth/desired"
	"berth.dev/berth/observed"
	"berth.dev/berth/rollout"
	"berth.dev/berth/spec"
)

// declarative is the desired-state half of berthd: the desired store, its
// sources (the watched directory and the API), and the controllers.
type declarative struct {
	store  *desired.Store
	api    *desired.APISource
	dir    *desired.DirSource
	recent *observed.Recent
	ctrl   *controller.Controller
	// revs and rollouts are the atomic applies (berth apply --atomic).
	revs     *desired.Revisions
	rollouts *rollout.Engine
}

// recentEvents bounds the events kept for `berth describe`.
const recentEvents = 2000

// openDeclarative builds the desired store and its sources. The API
// source is read synchronously from bbolt; the directory is read by Run.
func (d *Daemon) openDeclarative() error {
	decl := &declarative{store: desired.NewStore(), recent: observed.NewRecent(recentEvents)}
	// Before any source loads: the API source's stored objects too are
	// resolved with the configured defaults, the same the node applies to
	// `berth run`.
	decl.store.SetDefaults(d.cfg.NodeDefaults())
	prev := d.bus.OnPublish
	d.bus.OnPublish = func(ev observed.Event) {
		decl.recent.Add(ev)
		if prev != nil {
			prev(ev)
		}
	}
	api, err := desired.OpenAPISource(d.db, decl.store)
	if err != nil {
		return err
	}
	decl.api = api
	if err := d.openRollouts(decl); err != nil {
		return err
	}
	if d.cfg.Manifests != "" {
		decl.dir = desired.NewDirSource(d.cfg.Manifests, decl.store, desired.DirOptions{
			Resync: d.cfg.Reconcile.Relist.Duration, Settle: d.cfg.ManifestSettle.Duration, Logger: d.log,
			MissingIsEmpty: !d.cfg.ManifestsGiven,
			Atomic:         d.atomicManifests(decl),
		})
	}
	decl.ctrl = controller.New(controller.Options{
		Desired: decl.store, Node: d.node, DB: d.obs, Bus: d.bus, Log: d.log, Networks: d.net,
		Observer:   metricsObserver{d},
		Resync:     d.cfg.Reconcile.Resync.Duration,
		MaxBackoff: d.cfg.Reconcile.MaxBackoff.Duration,
		OnReady:    d.setReady,
	})
	d.decl = decl
	return nil
}

// runDeclarative starts the directory source and the controllers; they
// stop when ctx ends. The returned wait blocks until they have: the stores
// must not close under a reconcile.
func (d *Daemon) runDeclarative(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	if d.decl.dir != nil {
		run(func() {
			if err := d.decl.dir.Run(ctx); err != nil && ctx.Err() == nil {
				d.log.Error("manifest directory source stopped", "dir", d.cfg.Manifests, "err", err)
			}
		})
		run(func() { d.reportSourceErrors(ctx) })
	}
	run(func() { d.decl.ctrl.Run(ctx) })
	run(func() { <-ctx.Done(); d.decl.rollouts.Stop() })
	return wg.Wait
}

// reportSourceErrors publishes /manifests/error once per new error of a
// manifest source (a file that fails to parse or validate).
func (d *Daemon) reportSourceErrors(ctx context.Context) {
	seen := map[string]time.Time{}
	changed := d.decl.store.SourcesChanged(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		for _, s := range d.decl.store.Sources() {
			if s.Err == nil || seen[s.Name].Equal(s.ErrTime) {
				continue
			}
			seen[s.Name] = s.ErrTime
			d.log.Warn("manifest error: last good objects stay in force", "source", s.Name, "err", s.Err)
			if d.metrics != nil {
				d.metrics.ManifestErrors.Inc()
			}
			d.bus.Publish(ctx, "", "/manifests/error", map[string]any{"source": s.Name, "error": s.Err.Error()})
		}
	}
}

// metricsObserver feeds the controllers' work into the daemon's metrics.
type metricsObserver struct{ d *Daemon }

func (o metricsObserver) Reconciled(kind spec.Kind, took time.Duration, result string) {
	if m := o.d.metrics; m != nil {
		m.ReconcileTotal.WithLabelValues(string(kind), result).Inc()
		m.ReconcileDuration.WithLabelValues(string(kind)).Observe(took.Seconds())
	}
}

func (o metricsObserver) QueueDepth(kind spec.Kind, n int) {
	if m := o.d.metrics; m != nil {
		m.QueueDepth.WithLabelValues(string(kind)).Set(float64(n))
	}
}

func (o metricsObserver) DriftRepaired(kind spec.Kind) {
	if m := o.d.metrics; m != nil {
		m.DriftRepairs.WithLabelValues(string(kind)).Inc()
	}
}

func (o metricsObserver) Probed(probe, handler string, ok bool, took time.Duration) {
	if m := o.d.metrics; m != nil {
		result := "success"
		if !ok {
			result = "failure"
		}
		m.Probes.WithLabelValues(probe, result).Inc()
		m.ProbeDuration.WithLabelValues(handler).Observe(took.Seconds())
	}
}

func (o metricsObserver) Unhealthy() {
	if m := o.d.metrics; m != nil {
		m.ProbeUnhealthy.Inc()
	}
}

func (o metricsObserver) Objects(kind spec.Kind, desiredN, ready int) {
	if m := o.d.metrics; m != nil {
		m.DesiredObjects.WithLabelValues(string(kind)).Set(float64(desiredN))
		m.ReadyObjects.WithLabelValues(string(kind)).Set(float64(ready))
	}
}
