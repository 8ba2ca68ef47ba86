package desired

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/spec"
)

var (
	bucketDesired = []byte("desired")
	bucketObjects = []byte("objects")
)

// Action is what Apply or Delete did to one object.
type Action string

// The actions.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	// Conflicted: another source (a manifest file) owns the key; nothing
	// was stored.
	Conflicted Action = "conflict"
	Pruned     Action = "pruned"
	Deleted    Action = "deleted"
	NotFound   Action = "notfound"
)

// Result is the outcome for one object.
type Result struct {
	Key    spec.Key
	Action Action
	// Hash of the object as applied; empty for deletions.
	Hash string
	// Message explains a conflict.
	Message string
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Prune deletes the API objects of the same Manager that this apply
	// does not name.
	Prune bool
	// DryRun computes the results and stores nothing.
	DryRun bool
	// Manager names who applies ("berth-cli", a user); it scopes Prune.
	Manager string
	// ApplySet, when set, is recorded on every applied object as the label
	// spec.LabelApplySet, and Prune deletes only the set's members (in any
	// namespace). An object of another set is not taken over: Conflicted.
	ApplySet string
	// Selector, when not empty, scopes Prune to the objects whose labels
	// match it, within the namespaces the request names.
	Selector spec.Selector
	// PruneOnly, when not nil, limits Prune to these keys: an atomic
	// rollout prunes only the members it saved for its rollback, never
	// one an ordinary apply added to the set meanwhile (it could not be
	// put back).
	PruneOnly map[spec.Key]bool
}

// WithApplySet is o as Apply stores it: labelled with the apply set set,
// or, applied without one, keeping the set the object in force (old) was
// applied with, so an apply without --applyset does not drop it from its
// set unnoticed.
func WithApplySet(o spec.Object, set string, old *spec.Object) spec.Object {
	if set == "" && old != nil {
		set = old.Metadata.Labels[spec.LabelApplySet]
	}
	if set == "" {
		return o
	}
	o.Metadata.Labels = maps.Clone(o.Metadata.Labels)
	if o.Metadata.Labels == nil {
		o.Metadata.Labels = map[string]string{}
	}
	o.Metadata.Labels[spec.LabelApplySet] = set
	return o
}

// ErrPruneUnscoped is returned for Prune with neither ApplySet nor
// Selector: pruning "everything applied through the API" deletes other
// people's work.
var ErrPruneUnscoped = fmt.Errorf("--prune needs a scope: an apply set (--applyset NAME) or a label selector (-l): %w", errdefs.ErrInvalidArgument)

// prunable says whether r, which the apply does not name, is in its scope.
func (opts ApplyOptions) prunable(k spec.Key, r record, namespaces map[string]bool) bool {
	if r.Manager != opts.Manager {
		return false
	}
	if opts.PruneOnly != nil && !opts.PruneOnly[k] {
		return false
	}
	if opts.ApplySet != "" {
		if r.Object.Metadata.Labels[spec.LabelApplySet] != opts.ApplySet {
			return false
		}
	} else if !namespaces[k.Namespace] {
		// Prune within the namespaces the request names, as kubectl does:
		// one team's apply never prunes another namespace.
		return false
	}
	return opts.Selector.Matches(r.Object.Metadata.Labels)
}

// record is what the objects bucket holds per object.
type record struct {
	Object    spec.Object `json:"object"`
	Manager   string      `json:"manager,omitempty"`
	AppliedAt time.Time   `json:"appliedAt"`
}

// APISource holds the objects applied through the API, persisted in
// bbolt (see the package documentation for the buckets) and fed to the
// store as the source SourceAPI.
type APISource struct {
	db    *bolt.DB
	store *Store
	mu    sync.Mutex // serialises Apply and Delete
	objs  map[spec.Key]record
}

// OpenAPISource loads the persisted objects into store and returns the
// source. An object that no longer validates is logged into the source's
// error and left out, never silently deleted from the database.
func OpenAPISource(db *bolt.DB, store *Store) (*APISource, error) {
	a := &APISource{db: db, store: store, objs: map[spec.Key]record{}}
	var bad []error
	err := db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketDesired)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists(bucketObjects)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				bad = append(bad, fmt.Errorf("stored object %q: %w", k, err))
				return nil
			}
			r.Object = spec.Default(r.Object)
			if err := spec.Validate(r.Object); err != nil {
				bad = append(bad, fmt.Errorf("stored object %q: %w", k, err))
				return nil
			}
			a.objs[r.Object.Key()] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open api source: %w", err)
	}
	a.publish(errors.Join(bad...))
	return a, nil
}

func dbKey(k spec.Key) []byte { return []byte(k.Namespace + "/" + string(k.Kind) + "/" + k.Name) }

// publish hands the whole set to the store.
func (a *APISource) publish(loadErr error) {
	objs := make([]spec.Object, 0, len(a.objs))
	for _, r := range a.objs {
		objs = append(objs, r.Object)
	}
	a.store.Update(SourceUpdate{Source: SourceAPI, Objects: objs})
	if loadErr != nil {
		a.store.Update(SourceUpdate{Source: SourceAPI, Err: loadErr})
	}
}

// Apply creates or updates objects. Every object is defaulted and
// validated first; if any is invalid nothing is applied and the error
// (an ErrorList, errdefs.ErrInvalidArgument) is returned. An object
// owned by another source is not stored and reported as Conflicted.
func (a *APISource) Apply(ctx context.Context, objs []spec.Object, opts ApplyOptions) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Prune && opts.ApplySet == "" && len(opts.Selector) == 0 {
		return nil, ErrPruneUnscoped
	}
	// The objects in force are read below (an object keeps its apply
	// set): under the lock, as Restore and another Apply replace them.
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs spec.ErrorList
	prepared := make([]spec.Object, 0, len(objs))
	names := map[spec.Key]bool{}
	for _, o := range objs {
		o = spec.Default(o)
		o.Status = spec.Status{}
		if r, ok := a.objs[o.Key()]; ok {
			o = WithApplySet(o, opts.ApplySet, &r.Object)
		} else {
			o = WithApplySet(o, opts.ApplySet, nil)
		}
		if err := spec.Validate(o); err != nil {
			errs = append(errs, err.(spec.ErrorList)...)
			continue
		}
		if names[o.Key()] {
			return nil, fmt.Errorf("%s is given twice: %w", o.Key(), errdefs.ErrInvalidArgument)
		}
		names[o.Key()] = true
		prepared = append(prepared, o)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	now := time.Now().UTC()
	next := make(map[spec.Key]record, len(a.objs))
	for k, r := range a.objs {
		next[k] = r
	}
	var results []Result
	for _, o := range prepared {
		k, h := o.Key(), spec.Hash(o)
		if e, ok := a.store.Get(k); ok && e.Source != SourceAPI {
			results = append(results, Result{Key: k, Action: Conflicted, Hash: h,
				Message: fmt.Sprintf("%s is owned by %s", k, e.Source)})
			continue
		}
		if old, ok := a.objs[k]; ok && opts.ApplySet != "" {
			if set := old.Object.Metadata.Labels[spec.LabelApplySet]; set != "" && set != opts.ApplySet {
				results = append(results, Result{Key: k, Action: Conflicted, Hash: h,
					Message: fmt.Sprintf("%s belongs to apply set %q", k, set)})
				continue
			}
		}
		act := Created
		if old, ok := a.objs[k]; ok {
			act = Configured
			if spec.Hash(old.Object) == h && sameMeta(old.Object.Metadata, o.Metadata) {
				act = Unchanged
			}
		}
		o.Origin = spec.Origin{}
		next[k] = record{Object: o, Manager: opts.Manager, AppliedAt: now}
		results = append(results, Result{Key: k, Action: act, Hash: h})
	}
	if opts.Prune {
		namespaces := map[string]bool{}
		for k := range names {
			namespaces[k.Namespace] = true
		}
		for k, r := range a.objs {
			if !names[k] && opts.prunable(k, r, namespaces) {
				delete(next, k)
				results = append(results, Result{Key: k, Action: Pruned})
			}
		}
	}
	sort.SliceStable(results, func(i, j int) bool { return compareKeys(results[i].Key, results[j].Key) < 0 })
	if opts.DryRun {
		return results, nil
	}
	if err := a.save(results, next); err != nil {
		return nil, err
	}
	return results, nil
}

func sameMeta(a, b spec.Metadata) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// save persists the changed records in one transaction, then publishes.
func (a *APISource) save(results []Result, next map[spec.Key]record) error {
	err := a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDesired).Bucket(bucketObjects)
		for _, r := range results {
			switch r.Action {
			case Created, Configured, Unchanged:
				v, err := json.Marshal(next[r.Key])
				if err != nil {
					return err
				}
				if err := b.Put(dbKey(r.Key), v); err != nil {
					return err
				}
			case Pruned, Deleted:
				if err := b.Delete(dbKey(r.Key)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persist applied objects: %w", err)
	}
	a.objs = next
	a.publish(nil)
	return nil
}

// Delete removes API objects. A key the API does not hold is NotFound
// (a key owned by a manifest file is not the API's to delete).
func (a *APISource) Delete(ctx context.Context, keys []spec.Key) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next := make(map[spec.Key]record, len(a.objs))
	for k, r := range a.objs {
		next[k] = r
	}
	var results []Result
	for _, k := range keys {
		if _, ok := next[k]; !ok {
			results = append(results, Result{Key: k, Action: NotFound})
			continue
		}
		delete(next, k)
		results = append(results, Result{Key: k, Action: Deleted})
	}
	if err := a.save(results, next); err != nil {
		return nil, err
	}
	return results, nil
}
