package rollout

import (
	"context"
	"fmt"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/spec"
)

// DirOptions tune the rollouts of a watched directory in atomic mode.
type DirOptions struct {
	Timeout, MinReady time.Duration
}

// dirTarget puts a revision into the store as the directory's one source.
type dirTarget struct {
	e    *Engine
	dir  string
	opts DirOptions
	// next holds the latest set read, waiting for the rollout goroutine.
	next chan desired.AtomicSet
}

func (t *dirTarget) check(context.Context, []spec.Object) ([]desired.Result, bool, error) {
	return nil, true, nil // the store reports conflicts on the objects
}

func (t *dirTarget) save([]spec.Object) ([]desired.SavedObject, error) { return nil, nil }

func (t *dirTarget) put(_ context.Context, objs []spec.Object, _ []desired.SavedObject) ([]desired.Result, error) {
	t.publish(objs, "")
	return nil, nil
}

func (t *dirTarget) publish(objs []spec.Object, revision string) {
	t.e.opts.Desired.Update(desired.SourceUpdate{Source: t.dir, Objects: objs, Revision: revision})
}

func (t *dirTarget) restore(_, _ []desired.SavedObject, prev *desired.RolloutRevision) ([]spec.Key, error) {
	var objs []spec.Object
	rev := "no revision"
	if prev != nil {
		objs, rev = prev.Objects, fmt.Sprintf("revision %d (%s)", prev.Number, prev.Hash)
	}
	t.publish(objs, rev)
	keys := make([]spec.Key, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, o.Key())
	}
	return keys, nil
}

func (t *dirTarget) directory() bool { return true }

// Directory returns the desired.DirOptions.Atomic hook of the watched
// directory dir: the directory's whole set is rolled out as one revision of
// the set named by its path, with the guarantees of Apply. A set with a
// file that does not parse is not rolled out (the error is reported on the
// directory's source); a set whose revision failed is not tried again
// until the files change. At the first read, the current revision is put
// in force at once (so nothing is torn down meanwhile) and a different
// set in the files is then rolled out.
func (e *Engine) Directory(dir string, opts DirOptions) func(desired.AtomicSet) {
	t := &dirTarget{e: e, dir: dir, opts: opts, next: make(chan desired.AtomicSet, 1)}
	e.dmu.Lock()
	if e.dirs == nil {
		e.dirs = map[string]*dirTarget{}
	}
	e.dirs[dir] = t
	e.dmu.Unlock()
	go t.run(e.base)
	return t.take
}

// take is called by the directory source for every new set read.
func (t *dirTarget) take(s desired.AtomicSet) {
	log := t.e.opts.Log.With("dir", t.dir)
	reportErr := func() {
		log.Warn("atomic manifest directory: a file does not parse; the revision in force stays", "err", s.Err)
		t.e.opts.Desired.Update(desired.SourceUpdate{Source: t.dir, Err: s.Err})
	}
	if s.Err != nil && !s.First {
		reportErr()
		return
	}
	resolved := make([]spec.Object, len(s.Objects))
	for i, o := range s.Objects {
		resolved[i] = t.e.opts.Desired.Resolve(o)
	}
	hash := desired.ObjectsHash(resolved)
	cur, hasCur := t.e.opts.Revisions.Current(t.dir)
	seen := t.e.opts.Revisions.Seen(t.dir)
	markSeen := func() {
		if err := t.e.opts.Revisions.MarkSeen(t.dir, hash); err != nil {
			log.Warn("atomic manifest directory: record the set seen", "err", err)
		}
	}
	if s.First {
		switch {
		case s.Err == nil && hasCur && cur.Hash == hash:
			t.publish(s.Objects, s.Revision.String())
			markSeen()
			return
		case hasCur:
			// The revision in force until the files' set is Ready.
			t.publish(cur.Objects, fmt.Sprintf("revision %d (%s)", cur.Number, cur.Hash))
		default:
			t.publish(nil, "no revision")
		}
		if s.Err != nil {
			reportErr()
			return
		}
		if hash == seen {
			// The files are as they were when this set was last acted on:
			// what followed (a failure and its rollback, an undo) stands
			// until they change.
			log.Info("atomic manifest directory: the files are unchanged since they were last rolled out; the current revision stays", "current", cur.Number)
			return
		}
	}
	if hasCur && cur.Hash == hash {
		t.publish(s.Objects, s.Revision.String()) // labels or file names only
		markSeen()
		return
	}
	if !hasCur && len(s.Objects) == 0 {
		t.publish(nil, s.Revision.String()) // nothing, as before any revision
		markSeen()
		return
	}
	if last, ok := t.lastRevision(); ok && last.Hash == hash && last.State == desired.RevisionFailed {
		log.Info("atomic manifest directory: this set failed as revision; not tried again until the files change",
			"revision", last.Number, "reason", last.Reason)
		return
	}
	select { // the newest set wins
	case <-t.next:
	default:
	}
	t.next <- s
}

func (t *dirTarget) lastRevision() (desired.RolloutRevision, bool) {
	hist, err := t.e.opts.Revisions.History(t.dir)
	if err != nil || len(hist) == 0 {
		return desired.RolloutRevision{}, false
	}
	return hist[len(hist)-1], true
}

func (t *dirTarget) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-t.next:
			req := Request{Set: t.dir, Objects: s.Objects, Source: s.Revision.Resolved, Commit: s.Revision.Commit,
				Timeout: t.opts.Timeout, MinReady: t.opts.MinReady}
			if req.Source == "" {
				req.Source = t.dir
			}
			out, err := t.e.wait(ctx, func(ctx context.Context) (Outcome, error) { return t.e.applyTo(ctx, t, req) })
			// Acted on (after the revision's record, so a crash before it is
			// retried and one during it is judged by the interrupted revision).
			if out.Revision.Number != 0 {
				if err := t.e.opts.Revisions.MarkSeen(t.dir, out.Revision.Hash); err != nil {
					t.e.opts.Log.Warn("atomic manifest directory: record the set seen", "dir", t.dir, "err", err)
				}
			}
			switch {
			case err != nil:
				t.e.opts.Log.Error("atomic manifest directory: rollout", "dir", t.dir, "err", err)
			case out.Failed:
				t.e.opts.Log.Warn("atomic manifest directory: revision rolled back", "dir", t.dir,
					"revision", out.Revision.Number, "object", out.Object.String(), "reason", out.Reason)
			case !out.Unchanged:
				t.publish(s.Objects, s.Revision.String())
			}
		}
	}
}
