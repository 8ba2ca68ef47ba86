// Package rollout applies a set of objects as one revision: the images of
// the new revision are fetched before anything is stopped, the set is
// applied through the API source, and if any object does not become Ready
// in time every key the rollout touched is put back as it was (specs,
// hence images and running tasks, which the controllers converge to).
//
// Each step is one bbolt transaction (desired.Revisions): the pending
// revision, with the API records it replaces, is written before the new
// objects are, so a berthd killed mid-rollout finds the pending revision
// at start (Recover) and rolls it back before any controller runs: the
// node converges to the previous revision, never to a mix.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"berth.dev/berth/content/reference"
	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
)

// Observer is told of every rollout's end (metrics).
type Observer interface {
	// Rollout: result is ready, rolledback or failed (nothing applied:
	// a fetch failed); took is the time to Ready or to the failure.
	Rollout(result string, took time.Duration)
	// Rollback is the time from the failure to the previous revision Ready.
	Rollback(took time.Duration)
}

type nopObserver struct{}

func (nopObserver) Rollout(string, time.Duration) {}
func (nopObserver) Rollback(time.Duration)        {}

// Rollout results.
const (
	ResultReady      = "ready"
	ResultRolledBack = "rolledback"
	ResultFailed     = "failed"
)

// Options wire an Engine.
type Options struct {
	Desired   *desired.Store
	API       *desired.APISource
	Revisions *desired.Revisions
	DB        *observed.DB
	Node      node.Images
	Bus       observed.Publisher
	Log       *slog.Logger
	Observer  Observer
	// Manager is recorded on the applied objects (the API's manager).
	Manager string
	// Ready judges one object; nil is DefaultReady. It is the seam where
	// readiness probes change what Ready means.
	Ready func(ctx context.Context, k spec.Key) Readiness
}

// Engine runs rollouts, one at a time.
type Engine struct {
	opts   Options
	base   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // one rollout at a time

	dmu  sync.Mutex
	dirs map[string]*dirTarget // watched directories in atomic mode, by set
}

// New returns an engine. Its rollouts run under its own context until
// Stop, not under the request that started them: a client that goes away
// does not leave a half-done rollout behind.
func New(opts Options) *Engine {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	base, cancel := context.WithCancel(context.Background())
	e := &Engine{opts: opts, base: base, cancel: cancel}
	if e.opts.Ready == nil {
		e.opts.Ready = e.DefaultReady
	}
	return e
}

// Request is one atomic apply.
type Request struct {
	// Set names the apply set the revision replaces (the objects are
	// labelled with it, and its members the revision does not name are
	// pruned).
	Set     string
	Objects []spec.Object
	// Source and Commit say where the revision came from (for history).
	Source, Commit string
	// Timeout bounds the wait for Ready (default 60s); the rollback's own
	// wait has the same bound.
	Timeout time.Duration
	// MinReady is how long every object must have been Ready together
	// (default 1s), so a program that starts and exits at once fails.
	MinReady time.Duration

	// caller is the request's context (set by wait): a rollout whose
	// caller left before its turn came is not begun.
	caller context.Context
}

// Outcome is what a rollout did.
type Outcome struct {
	Revision desired.RolloutRevision
	Results  []desired.Result
	// Unchanged: the set is the current revision already; nothing done.
	Unchanged bool
	// Failed is set when the revision did not become Ready (or could not
	// be fetched); Object and Reason say which object and why.
	Failed bool
	Object spec.Key
	Reason string
	// RolledBackTo is the revision in force again (0: the state before
	// any revision of the set).
	RolledBackTo int64
	// RollbackReady says the previous revision was Ready again within the
	// timeout; RollbackTook is how long that took.
	RollbackReady bool
	// ReadyTook is from the apply to every object Ready (held MinReady).
	ReadyTook    time.Duration
	RollbackTook time.Duration
}

// Recover rolls back every set whose rollout was interrupted (berthd
// stopped or was killed while a revision was pending). Call it after the
// API source is open and before the controllers run.
func (e *Engine) Recover() error {
	var errs []error
	for _, set := range e.opts.Revisions.Sets() {
		p, ok := e.opts.Revisions.Pending(set)
		if !ok {
			continue
		}
		// A directory's revisions reach the store from memory only: its
		// first read publishes the current revision (see Directory).
		if !p.Directory {
			if err := e.opts.API.RestoreIf(p.Prior, p.Left); err != nil {
				errs = append(errs, fmt.Errorf("roll back interrupted revision %d of %s: %w", p.Number, set, err))
				continue
			}
		}
		prev := int64(0)
		if c, ok := e.opts.Revisions.Current(set); ok {
			prev = c.Number
		}
		reason := fmt.Sprintf("interrupted: berthd stopped during the rollout; rolled back to revision %d", prev)
		if _, err := e.opts.Revisions.Finish(set, p.Number, desired.RevisionFailed, reason); err != nil {
			errs = append(errs, err)
		}
		e.opts.Log.Warn("rolled back an interrupted rollout", "set", set, "revision", p.Number, "to", prev)
	}
	return errors.Join(errs...)
}

// Stop ends the rollout in flight (it rolls back: berthd is stopping, and
// a restart would roll it back anyway) and waits for it.
func (e *Engine) Stop() {
	e.cancel()
	e.mu.Lock()
	e.mu.Unlock() //nolint:staticcheck // waits for the rollout holding it
}

func (r *Request) defaults() {
	if r.Timeout <= 0 {
		r.Timeout = 60 * time.Second
	}
	if r.MinReady <= 0 {
		r.MinReady = time.Second
	}
}

// Apply rolls req out as one revision (see the package doc). ctx bounds
// only how long the caller waits: the rollout itself runs to its end.
func (e *Engine) Apply(ctx context.Context, req Request) (Outcome, error) {
	req.caller = ctx
	return e.wait(ctx, func(ctx context.Context) (Outcome, error) { return e.apply(ctx, req) })
}

// wait runs f under the engine's context and waits for it, or for ctx.
func (e *Engine) wait(ctx context.Context, f func(context.Context) (Outcome, error)) (Outcome, error) {
	type res struct {
		o   Outcome
		err error
	}
	done := make(chan res, 1)
	go func() {
		o, err := f(e.base)
		done <- res{o, err}
	}()
	select {
	case r := <-done:
		return r.o, r.err
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("the rollout goes on in berthd if it had begun; one still waiting for another is not begun (see berth rollout history): %w", ctx.Err())
	}
}

func (e *Engine) apply(ctx context.Context, req Request) (Outcome, error) {
	return e.applyTo(ctx, apiTarget{e: e, set: req.Set}, req)
}

// target is where a revision's objects go: the API source (berth apply
// --atomic) or the store as a watched directory's one source.
type target interface {
	// check reports what applying objs would do, and refuses conflicts.
	check(ctx context.Context, objs []spec.Object) (results []desired.Result, changed bool, err error)
	// save is what restore needs to put every touched key back.
	save(objs []spec.Object) ([]desired.SavedObject, error)
	// put applies objs; prior is what save returned, and nothing outside
	// it may be pruned (restore could not put it back).
	put(ctx context.Context, objs []spec.Object, prior []desired.SavedObject) ([]desired.Result, error)
	// restore puts back prior (saved) or the previous revision prev (nil:
	// the state before any revision), and returns the keys to wait for.
	// left is what put left of prior's keys (nil: restore them all).
	restore(prior, left []desired.SavedObject, prev *desired.RolloutRevision) ([]spec.Key, error)
	directory() bool
}

type apiTarget struct {
	e   *Engine
	set string
}

func (t apiTarget) opts() desired.ApplyOptions {
	return desired.ApplyOptions{Manager: t.e.opts.Manager, ApplySet: t.set, Prune: true}
}

func (t apiTarget) check(ctx context.Context, objs []spec.Object) ([]desired.Result, bool, error) {
	dry := t.opts()
	dry.DryRun = true
	results, err := t.e.opts.API.Apply(ctx, objs, dry)
	if err != nil {
		return nil, false, err
	}
	var conflicts []string
	changed := false
	for _, r := range results {
		switch r.Action {
		case desired.Conflicted:
			conflicts = append(conflicts, r.Message)
		case desired.Unchanged:
		default:
			changed = true
		}
	}
	if len(conflicts) > 0 {
		return results, false, fmt.Errorf("not applied: %s: %w", strings.Join(conflicts, "; "), errdefs.ErrFailedPrecondition)
	}
	return results, changed, nil
}

func (t apiTarget) save(objs []spec.Object) ([]desired.SavedObject, error) {
	keys := make([]spec.Key, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, o.Key())
	}
	return t.e.opts.API.Save(append(keys, t.e.opts.API.Members(t.set)...))
}

func (t apiTarget) put(ctx context.Context, objs []spec.Object, prior []desired.SavedObject) ([]desired.Result, error) {
	opts := t.opts()
	opts.PruneOnly = make(map[spec.Key]bool, len(prior))
	for _, s := range prior {
		opts.PruneOnly[s.Key] = true
	}
	return t.e.opts.API.Apply(ctx, objs, opts)
}

func (t apiTarget) restore(prior, left []desired.SavedObject, _ *desired.RolloutRevision) ([]spec.Key, error) {
	var back []spec.Key
	for _, s := range prior {
		if !s.Absent {
			back = append(back, s.Key)
		}
	}
	return back, t.e.opts.API.RestoreIf(prior, left)
}

func (apiTarget) directory() bool { return false }

func (e *Engine) applyTo(ctx context.Context, tg target, req Request) (Outcome, error) {
	req.defaults()
	if req.Set == "" {
		return Outcome{}, fmt.Errorf("an atomic apply needs a set: %w", errdefs.ErrInvalidArgument)
	}
	if len(req.Objects) == 0 && !tg.directory() {
		return Outcome{}, fmt.Errorf("no objects to apply: %w", errdefs.ErrInvalidArgument)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Outcome{}, fmt.Errorf("berthd is stopping: %w", err) // never begin what Stop would cut short
	}
	if req.caller != nil && req.caller.Err() != nil {
		// Its client gave up while another rollout ran: nobody waits for
		// this outcome, and begun late it would surprise whoever applies next.
		return Outcome{}, fmt.Errorf("not begun: the client left while another rollout ran: %w", req.caller.Err())
	}
	results, changed, err := tg.check(ctx, req.Objects)
	if err != nil {
		return Outcome{Results: results}, err
	}
	resolved := make([]spec.Object, len(req.Objects))
	for i, o := range req.Objects {
		resolved[i] = e.opts.Desired.Resolve(o)
	}
	hash := desired.ObjectsHash(resolved)
	cur, hasCur := e.opts.Revisions.Current(req.Set)
	if hasCur && cur.Hash == hash && !changed {
		return Outcome{Revision: cur, Results: results, Unchanged: true}, nil
	}
	keys := make([]spec.Key, 0, len(req.Objects))
	for _, o := range req.Objects {
		keys = append(keys, o.Key())
	}
	prior, err := tg.save(req.Objects)
	if err != nil {
		return Outcome{}, err
	}
	rev, err := e.opts.Revisions.Begin(desired.RolloutRevision{Set: req.Set, Hash: hash, Source: req.Source, Commit: req.Commit,
		Directory: tg.directory(), Objects: req.Objects, Prior: prior})
	if err != nil {
		return Outcome{}, err
	}
	prevNum := int64(0)
	var prev *desired.RolloutRevision
	if hasCur {
		prevNum, prev = cur.Number, &cur
	}
	start := time.Now()
	e.publish(ctx, "/rollout/start", rev, nil)
	log := e.opts.Log.With("set", req.Set, "revision", rev.Number)
	log.Info("rollout started", "objects", len(keys), "source", req.Source)

	// Every image first: a node that cannot fetch the new revision keeps
	// the old one running, untouched.
	if k, err := e.prefetch(ctx, req.Objects); err != nil {
		reason := fmt.Sprintf("%s: fetch failed: %v", k, err)
		rev, _ = e.opts.Revisions.Finish(req.Set, rev.Number, desired.RevisionFailed, reason+"; nothing was changed")
		e.opts.Observer.Rollout(ResultFailed, time.Since(start))
		e.publish(ctx, "/rollout/failed", rev, map[string]any{"object": k.String(), "reason": reason})
		log.Warn("rollout failed before any change", "object", k.String(), "err", err)
		return Outcome{Revision: rev, Results: results, Failed: true, Object: k, Reason: reason, RolledBackTo: prevNum, RollbackReady: true}, nil
	}
	results, err = tg.put(ctx, req.Objects, prior)
	if err != nil {
		_, _ = tg.restore(prior, nil, prev)
		rev, _ = e.opts.Revisions.Finish(req.Set, rev.Number, desired.RevisionFailed, "apply: "+err.Error())
		return Outcome{Revision: rev}, err
	}
	// What the apply left of the touched keys, so the rollback (here or
	// by Recover) puts back only those nobody applied or deleted since.
	var left []desired.SavedObject
	if !tg.directory() {
		keys := make([]spec.Key, 0, len(prior))
		for _, s := range prior {
			keys = append(keys, s.Key)
		}
		if left, err = e.opts.API.Save(keys); err == nil {
			err = e.opts.Revisions.SetLeft(req.Set, rev.Number, left)
		}
		if err != nil {
			log.Warn("record what the apply left; a rollback restores every key", "err", err)
			left = nil
		}
	}
	applied := time.Now()
	k, reason, ok := e.waitReady(ctx, keys, applied, req.Timeout, req.MinReady)
	if ok {
		out := Outcome{Revision: rev, Results: results, ReadyTook: time.Since(applied)}
		out.Revision, err = e.opts.Revisions.Finish(req.Set, rev.Number, desired.RevisionReady, "")
		e.opts.Observer.Rollout(ResultReady, time.Since(start))
		e.publish(ctx, "/rollout/ready", out.Revision, nil)
		log.Info("rollout ready", "took", time.Since(start).Round(time.Millisecond))
		return out, err
	}
	// Roll back: every key as it was before, in one store update.
	failedAt := time.Now()
	log.Warn("rollout failed; rolling back", "object", k.String(), "reason", reason, "to", prevNum)
	out := Outcome{Revision: rev, Results: results, Failed: true, Object: k, Reason: reason, RolledBackTo: prevNum, ReadyTook: failedAt.Sub(applied)}
	back, err := tg.restore(prior, left, prev)
	if err != nil {
		return out, fmt.Errorf("roll back revision %d: %w", rev.Number, err)
	}
	msg := fmt.Sprintf("%s: %s; rolled back to revision %d", k, reason, prevNum)
	out.Revision, _ = e.opts.Revisions.Finish(req.Set, rev.Number, desired.RevisionFailed, msg)
	e.opts.Observer.Rollout(ResultRolledBack, failedAt.Sub(start))
	e.publish(ctx, "/rollout/rollback", out.Revision, map[string]any{"object": k.String(), "reason": reason, "to": prevNum})
	bk, breason, bok := e.waitReady(ctx, back, time.Now(), req.Timeout, req.MinReady)
	out.RollbackReady, out.RollbackTook = bok, time.Since(failedAt)
	if bok {
		e.opts.Observer.Rollback(out.RollbackTook)
		log.Info("previous revision ready again", "took", out.RollbackTook.Round(time.Millisecond))
	} else {
		log.Warn("previous revision not ready after the rollback", "object", bk.String(), "reason", breason)
	}
	return out, nil
}

// Undo rolls the set back to revision to (0: the Ready revision before the
// current one) as a new revision, with the same guarantees as Apply.
func (e *Engine) Undo(ctx context.Context, set string, to int64, timeout, minReady time.Duration) (Outcome, error) {
	var target desired.RolloutRevision
	if to == 0 {
		p, ok := e.opts.Revisions.Previous(set)
		if !ok {
			return Outcome{}, fmt.Errorf("set %q has no earlier Ready revision to go back to: %w", set, errdefs.ErrNotFound)
		}
		target = p
	} else {
		r, err := e.opts.Revisions.Get(set, to)
		if err != nil {
			return Outcome{}, err
		}
		target = r
	}
	req := Request{Set: set, Objects: target.Objects, Timeout: timeout, MinReady: minReady,
		Source: fmt.Sprintf("undo to revision %d (%s)", target.Number, target.Source), Commit: target.Commit}
	if target.Directory {
		e.dmu.Lock()
		dt := e.dirs[set]
		e.dmu.Unlock()
		if dt == nil {
			return Outcome{}, fmt.Errorf("%s is not a watched directory in atomic mode now: %w", set, errdefs.ErrFailedPrecondition)
		}
		req.caller = ctx
		return e.wait(ctx, func(ctx context.Context) (Outcome, error) { return e.applyTo(ctx, dt, req) })
	}
	return e.Apply(ctx, req)
}

func (e *Engine) publish(ctx context.Context, topic string, r desired.RolloutRevision, extra map[string]any) {
	if e.opts.Bus == nil {
		return
	}
	p := map[string]any{"set": r.Set, "revision": r.Number, "hash": r.Hash, "state": r.State}
	for k, v := range extra {
		p[k] = v
	}
	e.opts.Bus.Publish(ctx, "", topic, p)
}

// prefetch fetches and unpacks every Image of objs that is not in force as
// it is declared, before anything is applied; it returns the first that
// fails.
func (e *Engine) prefetch(ctx context.Context, objs []spec.Object) (spec.Key, error) {
	for _, o := range objs {
		if o.Kind != spec.KindImage {
			continue
		}
		o = e.opts.Desired.Resolve(o)
		k := o.Key()
		if ent, ok := e.opts.Desired.Get(k); ok && ent.Hash == spec.Hash(o) {
			continue // in force: the controller keeps it as it is
		}
		if err := e.fetch(ctx, o); err != nil {
			return k, err
		}
	}
	return spec.Key{}, nil
}

func (e *Engine) fetch(ctx context.Context, o spec.Object) error {
	is, _ := o.ImageSpec()
	ns := o.Key().Namespace
	r, err := reference.Parse(is.Ref)
	if err != nil {
		return err
	}
	name := r.Name()
	// The Image owns what was fetched for it (it removes the record when
	// it goes), as if it had pulled it itself.
	labels := map[string]string{spec.LabelFetchedFor: o.Key().String()}
	img, err := e.opts.DB.GetImage(ctx, ns, name)
	present := err == nil
	sn := is.Snapshotter
	snName := sn
	if snName == "" {
		snName = spec.DefaultSnapshotter
	}
	if !present || is.PullPolicy == spec.PullAlways {
		switch {
		case is.Source != nil:
			path := o.ResolvePath(is.Source.Archive)
			if is.Source.Layout != "" {
				path = o.ResolvePath(is.Source.Layout)
			}
			if _, serr := os.Stat(path); serr != nil && present {
				break // the controller's rule: a missing source keeps what is present
			}
			if _, err := e.opts.Node.Import(ctx, ns, path, node.ImportOptions{Name: name, Platform: is.Platform, Labels: labels}); err != nil {
				return fmt.Errorf("import %s: %w", path, err)
			}
		case is.PullPolicy == spec.PullNever:
			if !present {
				return fmt.Errorf("image %s is not on the node and pullPolicy is Never: %w", is.Ref, errdefs.ErrNotFound)
			}
		default:
			po := node.PullOptions{Platform: is.Platform, Labels: labels}
			if is.Auth != nil {
				po.AuthFile = is.Auth.File
			}
			if _, err := e.opts.Node.Pull(ctx, ns, is.Ref, po); err != nil {
				if present && is.PullPolicy == spec.PullAlways {
					// What is on disk still runs this revision.
					e.opts.Log.Warn("re-pull before a rollout failed; the image on disk is used", "image", is.Ref, "err", err)
					break
				}
				return err
			}
		}
		if img, err = e.opts.DB.GetImage(ctx, ns, name); err != nil {
			return err
		}
	}
	if img.Unpacked[snName] == "" {
		if _, err := e.opts.Node.Unpack(ctx, ns, name, sn, is.Platform, nil); err != nil {
			return fmt.Errorf("unpack %s: %w", is.Ref, err)
		}
	}
	return nil
}

// Readiness is one object's state as a rollout judges it.
type Readiness struct {
	Ready bool
	// Reason says why not.
	Reason string
	// Failed says it will not become Ready by waiting (a task that
	// exited since the rollout began, a spec the node refuses).
	Failed bool
	// Since is when the reason was recorded (its condition's transition).
	Since time.Time
}

// failedReasons are Ready reasons that waiting does not mend: the
// program ran and exited or failed its liveness probe, or the node refuses
// the spec. A create or start that fails (StartFailed, CreateFailed,
// PortConflict while an old container lets go of its port) is retried by
// the controllers and may pass under load: the timeout judges those.
var failedReasons = map[string]bool{
	"BackOff": true, "Failed": true, "Unhealthy": true, "InvalidSpec": true, "PolicyViolation": true,
	"InvalidRef": true, "NotPresent": true, "ContainerInUse": true, "ImageNotDeclared": true,
}

// DefaultReady is what Ready means until probes say more: the object's
// recorded Ready condition, for its current spec and generation, and for
// what it depends on now (a Container made from its Image's current
// digest, a Task running in the Container as it is now).
func (e *Engine) DefaultReady(ctx context.Context, k spec.Key) Readiness {
	ent, ok := e.opts.Desired.Get(k)
	if !ok {
		return Readiness{Reason: "not in force"}
	}
	st, err := e.opts.DB.GetStatus(ctx, k)
	if err != nil || st.SpecHash != ent.Hash || st.Status.ObservedGeneration < ent.Generation {
		return Readiness{Reason: "not reconciled yet"}
	}
	c, ok := st.Status.Condition(spec.ConditionReady)
	if !ok {
		return Readiness{Reason: "not reconciled yet"}
	}
	if c.Status != spec.ConditionTrue {
		why := c.Reason
		if c.Message != "" {
			why += ": " + c.Message
		}
		return Readiness{Reason: why, Failed: failedReasons[c.Reason], Since: c.LastTransitionTime}
	}
	switch k.Kind {
	case spec.KindContainer:
		cs, _ := ent.Object.ContainerSpec()
		img, err := e.opts.DB.GetStatus(ctx, spec.Key{Namespace: k.Namespace, Kind: spec.KindImage, Name: cs.Image})
		if err != nil || img.Status.ImageStatus == nil || st.Status.ContainerStatus == nil ||
			st.Status.ContainerStatus.ImageDigest != img.Status.ImageStatus.Digest {
			return Readiness{Reason: "not made from its Image's current digest yet"}
		}
	case spec.KindTask:
		ts, _ := ent.Object.TaskSpec()
		t := st.Status.TaskStatus
		if ts.State == spec.TaskRunning || ts.State == "" {
			if t == nil || t.State != spec.TaskPhaseRunning {
				return Readiness{Reason: "not running"}
			}
			ctr, err := e.opts.DB.GetContainer(ctx, k.Namespace, ts.Container)
			if err != nil || !ctr.CreatedAt.Equal(t.ContainerCreatedAt) {
				return Readiness{Reason: "not started in its Container as it is now"}
			}
		}
	}
	return Readiness{Ready: true}
}

// waitReady waits until every key is Ready, all of them for minReady
// together, or timeout passes, or one fails for good after start. It
// returns the first key not Ready and why.
func (e *Engine) waitReady(ctx context.Context, keys []spec.Key, start time.Time, timeout, minReady time.Duration) (spec.Key, string, bool) {
	sorted := slices.Clone(keys)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := slices.Index(spec.Kinds, sorted[i].Kind), slices.Index(spec.Kinds, sorted[j].Kind)
		if a != b {
			return a < b
		}
		return sorted[i].String() < sorted[j].String()
	})
	deadline := start.Add(timeout)
	var allSince time.Time
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var bad spec.Key
		var why string
		all := true
		for _, k := range sorted {
			r := e.opts.Ready(ctx, k)
			if r.Ready {
				continue
			}
			if r.Failed && !r.Since.Before(start) {
				return k, r.Reason, false
			}
			if all {
				bad, why, all = k, r.Reason, false
			}
		}
		now := time.Now()
		if all {
			if allSince.IsZero() {
				allSince = now
			}
			if now.Sub(allSince) >= minReady {
				return spec.Key{}, "", true
			}
		} else {
			allSince = time.Time{}
		}
		if now.After(deadline) {
			if all {
				return sorted[0], fmt.Sprintf("Ready for less than %s at the deadline (%s)", minReady, timeout), false
			}
			return bad, fmt.Sprintf("not Ready after %s: %s", timeout, why), false
		}
		select {
		case <-ctx.Done():
			return bad, ctx.Err().Error(), false
		case <-tick.C:
		}
	}
}
