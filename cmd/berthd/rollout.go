package main

import (
	"fmt"
	"path/filepath"
	"time"

	"berth.dev/berth/api/server"
	"berth.dev/berth/desired"
	"berth.dev/berth/rollout"
)

// openRollouts opens the revision store and the rollout engine, and rolls
// back a rollout a previous berthd left pending (killed mid-rollout): it
// runs before any controller, so the node converges to the previous
// revision and never acts on the half-rolled-out one.
func (d *Daemon) openRollouts(decl *declarative) error {
	revs, err := desired.OpenRevisions(d.db, 0)
	if err != nil {
		return err
	}
	decl.revs = revs
	decl.rollouts = rollout.New(rollout.Options{
		Desired: decl.store, API: decl.api, Revisions: revs, DB: d.obs, Node: d.node, Bus: d.bus,
		Log: d.log.With("component", "rollout"), Observer: rolloutObserver{d}, Manager: server.ApplyManager,
	})
	if err := decl.rollouts.Recover(); err != nil {
		d.log.Error("roll back an interrupted rollout", "err", err)
	}
	return nil
}

// rolloutObserver feeds rollouts into the daemon's metrics.
type rolloutObserver struct{ d *Daemon }

func (o rolloutObserver) Rollout(result string, took time.Duration) {
	if m := o.d.metrics; m != nil {
		m.Rollouts.WithLabelValues(result).Inc()
		m.RolloutDuration.WithLabelValues(result).Observe(took.Seconds())
	}
}

func (o rolloutObserver) Rollback(took time.Duration) {
	if m := o.d.metrics; m != nil {
		m.RollbackDuration.Observe(took.Seconds())
	}
}

// ImageUpdate counts an automatic image update (controller.UpdateObserver).
func (o metricsObserver) ImageUpdate(result string) {
	if m := o.d.metrics; m != nil {
		m.ImageUpdates.WithLabelValues(result).Inc()
	}
}

// RolloutConfig is the rollout section of berthd's configuration.
type RolloutConfig struct {
	// AtomicManifests rolls the watched directory out as one revision, as
	// berth apply --atomic does: a set whose objects are not all Ready
	// within Timeout is rolled back to the previous revision, and a file
	// that does not parse holds the whole set back.
	AtomicManifests bool `json:"atomicManifests"`
	// Timeout is how long a revision may take to become Ready (default 60s).
	Timeout Duration `json:"timeout"`
	// MinReady is how long every object must stay Ready together (default 1s).
	MinReady Duration `json:"minReady"`
}

// check refuses durations a rollout cannot use.
func (r RolloutConfig) check() error {
	if r.Timeout.Duration < 0 {
		return fmt.Errorf("rollout.timeout: %s is negative", r.Timeout.Duration)
	}
	if r.MinReady.Duration < 0 {
		return fmt.Errorf("rollout.minReady: %s is negative", r.MinReady.Duration)
	}
	return nil
}

// atomicManifests is the watched directory's Atomic hook, nil unless
// rollout.atomicManifests is set.
func (d *Daemon) atomicManifests(decl *declarative) func(desired.AtomicSet) {
	if !d.cfg.Rollout.AtomicManifests {
		return nil
	}
	return decl.rollouts.Directory(filepath.Clean(d.cfg.Manifests), rollout.DirOptions{
		Timeout: d.cfg.Rollout.Timeout.Duration, MinReady: d.cfg.Rollout.MinReady.Duration,
	})
}
