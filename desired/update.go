package desired

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"

	"berth.dev/berth/spec"
)

// ReplaceSource replaces the whole set of one source. When err is not
// nil the source keeps its last good objects and err is recorded.
func (s *Store) ReplaceSource(source string, objs []spec.Object, err error) {
	s.Update(SourceUpdate{Source: source, Objects: objs, Err: err})
}

// RemoveSource drops a source and every object it declared.
func (s *Store) RemoveSource(source string) {
	s.Update(SourceUpdate{Source: source, Remove: true})
}

// Update applies several source updates as one change: readers never see
// a state between them, and an object that moves from one source to
// another in the same Update is handed over, never deleted and
// recreated. Each object is defaulted and validated; a source with an
// invalid object, or one key twice, fails as a whole (keeping its last
// good set).
func (s *Store) Update(updates ...SourceUpdate) {
	s.mu.Lock()
	now := s.now()
	affected := map[spec.Key]bool{}
	for _, u := range updates {
		st := s.sources[u.Source]
		if u.Remove {
			if st != nil {
				s.setDeclared(u.Source, st, nil, affected)
				delete(s.sources, u.Source)
			}
			continue
		}
		if st == nil {
			st = &sourceState{status: SourceStatus{Name: u.Source}}
			s.sources[u.Source] = st
		}
		err := u.Err
		var decl map[spec.Key]declaration
		if err == nil {
			decl, err = s.prepare(u.Objects, st.declared)
		}
		if err != nil {
			st.status.Err, st.status.ErrTime = err, now
			continue
		}
		s.setDeclared(u.Source, st, decl, affected)
		st.status = SourceStatus{Name: u.Source, Revision: u.Revision, Objects: len(decl), Updated: now}
	}
	var changed []spec.Key
	for k := range affected {
		if s.resolve(k, now) {
			changed = append(changed, k)
		}
	}
	sort.Slice(changed, func(i, j int) bool { return compareKeys(changed[i], changed[j]) < 0 })
	for sub := range s.subs {
		sub.push(changed)
	}
	var watchers []*watcher
	if len(changed) > 0 {
		for w := range s.watchers {
			watchers = append(watchers, w)
		}
	}
	if len(updates) > 0 {
		for ch := range s.sourceSubs {
			select {
			case ch <- struct{}{}:
			default: // one pending signal covers this change too
			}
		}
	}
	s.mu.Unlock()
	for _, w := range watchers {
		w.fn(changed)
	}
}

// prepare defaults, validates and hashes a source's new set, keeping the
// declaration order of keys it already declared.
func (s *Store) prepare(objs []spec.Object, old map[spec.Key]declaration) (map[spec.Key]declaration, error) {
	decl := make(map[spec.Key]declaration, len(objs))
	var errs []error
	for _, o := range objs {
		o = s.defaults.Resolve(o) // under s.mu: Update holds it
		o.Status = spec.Status{}
		if err := spec.Validate(o); err != nil {
			errs = append(errs, err)
			continue
		}
		k := o.Key()
		if _, dup := decl[k]; dup {
			errs = append(errs, fmt.Errorf("%s is declared twice", k))
			continue
		}
		d := declaration{obj: o, hash: spec.Hash(o)}
		if prev, ok := old[k]; ok {
			d.seq = prev.seq
		} else {
			s.seq++
			d.seq = s.seq
		}
		decl[k] = d
	}
	return decl, errors.Join(errs...)
}

func (s *Store) setDeclared(name string, st *sourceState, decl map[spec.Key]declaration, affected map[spec.Key]bool) {
	for k := range st.declared {
		affected[k] = true
	}
	for k := range decl {
		affected[k] = true
	}
	st.declared = decl
}

// resolve works out the owner, entry and conflicts of k, and reports
// whether anything a controller cares about changed.
func (s *Store) resolve(k spec.Key, now time.Time) bool {
	type cand struct {
		source string
		d      declaration
	}
	var cands []cand
	for name, st := range s.sources {
		if d, ok := st.declared[k]; ok {
			cands = append(cands, cand{name, d})
		}
	}
	cur := s.entries[k]
	oldConflicts := s.conflicts[k]
	if len(cands) == 0 {
		delete(s.conflicts, k)
		if cur == nil {
			return false
		}
		delete(s.entries, k)
		return true
	}
	// The owner keeps its key while it declares it, so a duplicate never
	// flaps; otherwise the oldest declaration wins.
	sort.Slice(cands, func(i, j int) bool {
		if cur != nil && (cands[i].source == cur.Source) != (cands[j].source == cur.Source) {
			return cands[i].source == cur.Source
		}
		if cands[i].d.seq != cands[j].d.seq {
			return cands[i].d.seq < cands[j].d.seq
		}
		return cands[i].source < cands[j].source
	})
	win := cands[0]
	var conflicts []Conflict
	for _, c := range cands[1:] {
		cf := Conflict{Key: k, Owner: win.source, Source: c.source, Since: now}
		for _, old := range oldConflicts {
			if old.Owner == cf.Owner && old.Source == cf.Source {
				cf.Since = old.Since
			}
		}
		conflicts = append(conflicts, cf)
	}
	if len(conflicts) > 0 {
		s.conflicts[k] = conflicts
	} else {
		delete(s.conflicts, k)
	}
	changed := !reflect.DeepEqual(conflicts, oldConflicts) && (len(conflicts) > 0 || len(oldConflicts) > 0)
	switch {
	case cur == nil:
		s.gens[k]++
		s.entries[k] = &Entry{Key: k, Source: win.source, Generation: s.gens[k], Hash: win.d.hash, Object: win.d.obj}
		return true
	case cur.Hash != win.d.hash:
		s.gens[k]++
		*cur = Entry{Key: k, Source: win.source, Generation: s.gens[k], Hash: win.d.hash, Object: win.d.obj}
		return true
	case cur.Source != win.source || !reflect.DeepEqual(cur.Object.Metadata, win.d.obj.Metadata):
		*cur = Entry{Key: k, Source: win.source, Generation: cur.Generation, Hash: win.d.hash, Object: win.d.obj}
		return true
	default:
		cur.Object = win.d.obj // same spec; keep the newest origin
	}
	return changed
}
