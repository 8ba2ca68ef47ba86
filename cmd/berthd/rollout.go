package main

import (
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
