package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
)

// observation is what one reconcile saw: whether the object is ready, why
// not, and whether the reason is an error (Degraded) or progress.
type observation struct {
	ready    bool
	degraded bool
	reason   string
	message  string
	// kind fills in the kind's own status fields.
	kind func(*spec.Status)
	// owns is what the object made on the node.
	owns string
}

// record writes the object's status, keeping transition times of
// conditions that did not change, and publishes /reconcile/status when
// readiness or degradation changes. It reports whether readiness changed.
func (c *Controller) record(ctx context.Context, e desired.Entry, o observation) bool {
	prev, _ := c.opts.DB.GetStatus(ctx, e.Key)
	if o.owns == "" {
		o.owns = prev.Owns
	}
	now := time.Now().UTC()
	st := spec.Status{ObservedGeneration: e.Generation}
	if o.kind != nil {
		o.kind(&st)
	}
	cond := func(t spec.ConditionType, on bool, reason, msg string) {
		s := spec.ConditionFalse
		if on {
			s = spec.ConditionTrue
		}
		c := spec.Condition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: now}
		if old, ok := prev.Status.Condition(t); ok && old.Status == s {
			c.LastTransitionTime = old.LastTransitionTime
		}
		st.Conditions = append(st.Conditions, c)
	}
	// Ready and Degraded together: it runs, but something is off (a re-pull
	// failed and the old image stays in use); the reason goes to Degraded.
	readyReason, readyMsg := o.reason, o.message
	if o.ready && (readyReason == "" || o.degraded) {
		readyReason, readyMsg = "Ready", ""
	}
	cond(spec.ConditionReady, o.ready, readyReason, readyMsg)
	cond(spec.ConditionProgressing, !o.ready && !o.degraded, progressReason(o), "")
	degradedReason, degradedMsg := "", ""
	if o.degraded {
		degradedReason, degradedMsg = o.reason, o.message
	}
	cond(spec.ConditionDegraded, o.degraded, degradedReason, degradedMsg)
	if conflicts := c.opts.Desired.ConflictsFor(e.Key); len(conflicts) > 0 {
		var msgs []string
		for _, cf := range conflicts {
			msgs = append(msgs, cf.String())
		}
		cond(spec.ConditionConflict, true, "Conflict", strings.Join(msgs, "; "))
	}
	next := observed.ObjectStatus{Key: e.Key, SpecHash: e.Hash, Owns: o.owns, Source: e.Source, StopTimeout: stopTimeoutOf(e), Status: st}
	// A resync mostly finds nothing changed: then it writes nothing, so a
	// steady node costs no disk writes.
	if !sameStatus(prev, next) {
		if err := c.opts.DB.PutStatus(ctx, next); err != nil {
			c.log.Warn("record status", "object", e.Key.String(), "err", err)
		}
	}
	wasReady, wasDegraded, wasReason := condState(prev.Status)
	changed := wasReady != o.ready
	if changed || wasDegraded != o.degraded || wasReason != readyReason {
		c.opts.Bus.Publish(ctx, e.Key.Namespace, "/reconcile/status", map[string]any{
			"kind": e.Key.Kind, "name": e.Key.Name, "ready": o.ready, "degraded": o.degraded,
			"reason": readyReason, "message": o.message, "generation": e.Generation,
		})
	}
	return changed
}

func sameStatus(a, b observed.ObjectStatus) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func stopTimeoutOf(e desired.Entry) string {
	if ts, ok := e.Object.TaskSpec(); ok {
		return string(ts.StopTimeout)
	}
	return ""
}

func progressReason(o observation) string {
	if !o.ready && !o.degraded {
		return o.reason
	}
	return ""
}

// condState is what decides whether a status change is worth an event:
// readiness, degradation and the Ready condition's reason.
func condState(s spec.Status) (ready, degraded bool, reason string) {
	if c, ok := s.Condition(spec.ConditionReady); ok {
		ready = c.Status == spec.ConditionTrue
		reason = c.Reason
	}
	if c, ok := s.Condition(spec.ConditionDegraded); ok {
		degraded = c.Status == spec.ConditionTrue
	}
	return ready, degraded, reason
}

// isReady reports whether a declared object's recorded status is Ready for
// its current spec.
func (c *Controller) isReady(ctx context.Context, k spec.Key) (observed.ObjectStatus, bool) {
	st, err := c.opts.DB.GetStatus(ctx, k)
	if err != nil {
		return st, false
	}
	e, ok := c.opts.Desired.Get(k)
	if !ok || st.SpecHash != e.Hash {
		return st, false
	}
	cond, ok := st.Status.Condition(spec.ConditionReady)
	return st, ok && cond.Status == spec.ConditionTrue
}

// repaired reports a drift repair.
func (c *Controller) repaired(ctx context.Context, k spec.Key, what string) {
	c.log.Info("repaired drift", "object", k.String(), "what", what)
	c.opts.Observer.DriftRepaired(k.Kind)
	c.opts.Bus.Publish(ctx, k.Namespace, "/reconcile/repair", map[string]any{"kind": k.Kind, "name": k.Name, "repair": what})
}
