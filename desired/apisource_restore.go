package desired

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/spec"
)

// Save returns the API source's records of keys as they are now (a key it
// does not hold is saved as Absent), for Restore to put back: what a
// rollout keeps to undo itself.
func (a *APISource) Save(keys []spec.Key) ([]SavedObject, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := map[spec.Key]bool{}
	var out []SavedObject
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		r, ok := a.objs[k]
		if !ok {
			out = append(out, SavedObject{Key: k, Absent: true})
			continue
		}
		data, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("save %s: %w", k, err)
		}
		out = append(out, SavedObject{Key: k, Record: data})
	}
	return out, nil
}

// Members returns the keys of the API objects of apply set set.
func (a *APISource) Members(set string) []spec.Key {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []spec.Key
	for k, r := range a.objs {
		if r.Object.Metadata.Labels[spec.LabelApplySet] == set {
			out = append(out, k)
		}
	}
	return out
}

// Restore puts saved records back in one transaction and publishes the
// result in one store update: every saved key is exactly as it was when
// saved, the others are untouched. Restoring twice is the same as once.
func (a *APISource) Restore(saved []SavedObject) error {
	return a.RestoreIf(saved, nil)
}

// RestoreIf is Restore of the saved keys that are still as left, a second
// Save of the same keys (what a rollout's apply made of them): a key
// applied or deleted since by someone else is theirs now and stays. A nil
// left restores every key.
func (a *APISource) RestoreIf(saved, left []SavedObject) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if left != nil {
		want := make(map[spec.Key]SavedObject, len(left))
		for _, l := range left {
			want[l.Key] = l
		}
		var still []SavedObject
		for _, s := range saved {
			w, ok := want[s.Key]
			if !ok {
				continue // not left by the rollout: not its to restore
			}
			r, present := a.objs[s.Key]
			cur := SavedObject{Key: s.Key, Absent: !present}
			if present {
				data, err := json.Marshal(r)
				if err != nil {
					return fmt.Errorf("restore %s: %w", s.Key, err)
				}
				cur.Record = data
			}
			if cur.Absent == w.Absent && string(cur.Record) == string(w.Record) {
				still = append(still, s)
			}
		}
		saved = still
	}
	next := make(map[spec.Key]record, len(a.objs))
	for k, r := range a.objs {
		next[k] = r
	}
	for _, s := range saved {
		if s.Absent {
			delete(next, s.Key)
			continue
		}
		var r record
		if err := json.Unmarshal(s.Record, &r); err != nil {
			return fmt.Errorf("restore %s: %w", s.Key, err)
		}
		r.Object = spec.Default(r.Object)
		next[s.Key] = r
	}
	err := a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDesired).Bucket(bucketObjects)
		for _, s := range saved {
			if s.Absent {
				if err := b.Delete(dbKey(s.Key)); err != nil {
					return err
				}
				continue
			}
			v, err := json.Marshal(next[s.Key])
			if err != nil {
				return err
			}
			if err := b.Put(dbKey(s.Key), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("persist restored objects: %w", err)
	}
	a.objs = next
	a.publish(nil)
	return nil
}
