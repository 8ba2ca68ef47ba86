package desired

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/spec"
)

// Revision states.
const (
	// RevisionPending is a revision being rolled out: applied (or about to
	// be) and not yet Ready. At most one per set; a berthd that starts and
	// finds one rolls it back (Revisions.Interrupted).
	RevisionPending = "Pending"
	// RevisionReady is a revision whose every object became Ready: the
	// set's current revision, or an older one it replaced.
	RevisionReady = "Ready"
	// RevisionFailed is a revision that did not become Ready in time (or
	// whose images could not be fetched) and was rolled back.
	RevisionFailed = "Failed"
)

// SavedObject is the API source's record of one key before a rollout: the
// object in force, or Absent when the key was not applied. Restoring it
// puts the key back exactly as it was.
type SavedObject struct {
	Key    spec.Key `json:"key"`
	Absent bool     `json:"absent,omitempty"`
	// Record is the API source's record (object, manager, appliedAt).
	Record json.RawMessage `json:"record,omitempty"`
}

// RolloutRevision is one revision of an atomic set: the objects applied as
// one step and what the set's keys were before it, so it can be undone
// whatever happens to the process.
type RolloutRevision struct {
	Set    string `json:"set"`
	Number int64  `json:"number"`
	// Hash is a digest of the revision's objects (their keys and spec
	// hashes), so the same set applied twice has the same hash.
	Hash   string    `json:"hash"`
	Time   time.Time `json:"time"`
	Source string    `json:"source,omitempty"`
	Commit string    `json:"commit,omitempty"`
	// Directory says the set is a watched directory in atomic mode (its
	// objects reach the store from the revision, not from the API source).
	Directory bool   `json:"directory,omitempty"`
	State     string `json:"state"`
	// Reason says why a Failed revision failed: the object and its reason.
	Reason string `json:"reason,omitempty"`
	// FinishedAt is when it turned Ready or was rolled back.
	FinishedAt time.Time     `json:"finishedAt,omitzero"`
	Objects    []spec.Object `json:"objects"`
	// Prior is the API source's records of every key the rollout touches
	// (the revision's and the set's previous members), as they were before.
	Prior []SavedObject `json:"prior,omitempty"`
	// Left is the same keys as the apply left them (SetLeft), so a
	// rollback restores only those nobody changed since; nil (a crash
	// before it was written) restores them all.
	Left []SavedObject `json:"left,omitempty"`
}

// ObjectsHash is the revision hash of a set of objects: a digest of their
// sorted keys and spec hashes.
func ObjectsHash(objs []spec.Object) string {
	lines := make([]string, 0, len(objs))
	for _, o := range objs {
		lines = append(lines, o.Key().String()+"\x00"+spec.Hash(o))
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		fmt.Fprintln(h, l)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

var (
	bucketRevisions = []byte("revisions")
	keyRolloutState = []byte("state")
)

// rolloutState is a set's pointers: the revision in force and the one
// being rolled out.
type rolloutState struct {
	Current int64 `json:"current,omitempty"`
	Pending int64 `json:"pending,omitempty"`
	Last    int64 `json:"last,omitempty"`
	// Seen is the hash of the set a watched directory last handed over
	// (MarkSeen), so a restart that reads the same files does not act on
	// them again.
	Seen string `json:"seen,omitempty"`
}

// DefaultKeepRevisions is how many revisions of a set are kept.
const DefaultKeepRevisions = 10

// Revisions persists the revisions of atomic sets in bbolt, beside the API
// source's objects:
//
//	desired/revisions/<set>/state          → {"current": N, "pending": M, "last": L}
//	desired/revisions/<set>/<8-byte N, BE> → RolloutRevision JSON
//
// Every change is one bbolt transaction (fsynced), so a crash leaves either
// the state before a step or after it.
type Revisions struct {
	db   *bolt.DB
	keep int
}

// OpenRevisions returns the revision store of db, keeping keep revisions
// per set (DefaultKeepRevisions when keep <= 0); the current and the
// pending revision are never dropped.
func OpenRevisions(db *bolt.DB, keep int) (*Revisions, error) {
	if keep <= 0 {
		keep = DefaultKeepRevisions
	}
	err := db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketDesired)
		if err != nil {
			return err
		}
		_, err = root.CreateBucketIfNotExists(bucketRevisions)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open revisions: %w", err)
	}
	return &Revisions{db: db, keep: keep}, nil
}

func revKey(n int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(n))
	return b
}

func setBucket(tx *bolt.Tx, set string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketDesired).Bucket(bucketRevisions)
	if create {
		return root.CreateBucketIfNotExists([]byte(set))
	}
	return root.Bucket([]byte(set)), nil
}

func readState(b *bolt.Bucket) rolloutState {
	var st rolloutState
	if v := b.Get(keyRolloutState); v != nil {
		_ = json.Unmarshal(v, &st)
	}
	return st
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

func readRevision(b *bolt.Bucket, n int64) (RolloutRevision, bool) {
	v := b.Get(revKey(n))
	if v == nil {
		return RolloutRevision{}, false
	}
	var r RolloutRevision
	if err := json.Unmarshal(v, &r); err != nil {
		return RolloutRevision{}, false
	}
	return r, true
}

// ErrRolloutInProgress is returned by Begin while a set has a pending
// revision.
var ErrRolloutInProgress = fmt.Errorf("a rollout of this set is in progress: %w", errdefs.ErrFailedPrecondition)

// Begin records r as the set's pending revision, numbered after the last
// one, and returns it. A set with a pending revision refuses another.
func (rs *Revisions) Begin(r RolloutRevision) (RolloutRevision, error) {
	if r.Set == "" {
		return r, fmt.Errorf("a revision needs a set: %w", errdefs.ErrInvalidArgument)
	}
	err := rs.db.Update(func(tx *bolt.Tx) error {
		b, err := setBucket(tx, r.Set, true)
		if err != nil {
			return err
		}
		st := readState(b)
		if st.Pending != 0 {
			return fmt.Errorf("revision %d: %w", st.Pending, ErrRolloutInProgress)
		}
		st.Last++
		r.Number, r.State = st.Last, RevisionPending
		if r.Time.IsZero() {
			r.Time = time.Now().UTC()
		}
		st.Pending = r.Number
		if err := putJSON(b, revKey(r.Number), r); err != nil {
			return err
		}
		if err := putJSON(b, keyRolloutState, st); err != nil {
			return err
		}
		return rs.trim(b, st)
	})
	if err != nil {
		return RolloutRevision{}, fmt.Errorf("record revision of %s: %w", r.Set, err)
	}
	return r, nil
}

// trim drops the oldest revisions beyond keep, never current or pending.
func (rs *Revisions) trim(b *bolt.Bucket, st rolloutState) error {
	var nums []int64
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) == 8 {
			nums = append(nums, int64(binary.BigEndian.Uint64(k)))
		}
	}
	extra := len(nums) - rs.keep
	for _, n := range nums {
		if extra <= 0 {
			break
		}
		if n == st.Current || n == st.Pending {
			continue
		}
		if err := b.Delete(revKey(n)); err != nil {
			return err
		}
		extra--
	}
	return nil
}

// Finish ends the set's pending revision n: Ready makes it current,
// Failed records reason (the previous current revision stays current).
func (rs *Revisions) Finish(set string, n int64, state, reason string) (RolloutRevision, error) {
	var out RolloutRevision
	err := rs.db.Update(func(tx *bolt.Tx) error {
		b, err := setBucket(tx, set, false)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("set %q: %w", set, errdefs.ErrNotFound)
		}
		st := readState(b)
		r, ok := readRevision(b, n)
		if !ok {
			return fmt.Errorf("revision %d of %q: %w", n, set, errdefs.ErrNotFound)
		}
		if st.Pending != n {
			return fmt.Errorf("revision %d of %q is not pending: %w", n, set, errdefs.ErrFailedPrecondition)
		}
		r.State, r.Reason, r.FinishedAt = state, reason, time.Now().UTC()
		if state == RevisionReady {
			st.Current = n
		}
		st.Pending = 0
		// Prior is needed only while the revision may still be undone by a
		// restart; an old revision is re-applied from its Objects.
		r.Prior, r.Left = nil, nil
		out = r
		if err := putJSON(b, revKey(n), r); err != nil {
			return err
		}
		return putJSON(b, keyRolloutState, st)
	})
	return out, err
}

// SetLeft records left (the touched keys as the apply left them) on the
// set's pending revision n.
func (rs *Revisions) SetLeft(set string, n int64, left []SavedObject) error {
	return rs.db.Update(func(tx *bolt.Tx) error {
		b, err := setBucket(tx, set, false)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("set %q: %w", set, errdefs.ErrNotFound)
		}
		r, ok := readRevision(b, n)
		if !ok || readState(b).Pending != n {
			return fmt.Errorf("revision %d of %q is not pending: %w", n, set, errdefs.ErrFailedPrecondition)
		}
		r.Left = left
		if r.Left == nil {
			r.Left = []SavedObject{}
		}
		return putJSON(b, revKey(n), r)
	})
}

// Get returns revision n of set.
func (rs *Revisions) Get(set string, n int64) (RolloutRevision, error) {
	var r RolloutRevision
	ok := false
	err := rs.db.View(func(tx *bolt.Tx) error {
		b, _ := setBucket(tx, set, false)
		if b != nil {
			r, ok = readRevision(b, n)
		}
		return nil
	})
	if err == nil && !ok {
		err = fmt.Errorf("revision %d of set %q: %w", n, set, errdefs.ErrNotFound)
	}
	return r, err
}

// Current returns the set's revision in force (ok false when it has none).
func (rs *Revisions) Current(set string) (RolloutRevision, bool) {
	return rs.pointer(set, func(st rolloutState) int64 { return st.Current })
}

// Pending returns the set's revision being rolled out, if any.
func (rs *Revisions) Pending(set string) (RolloutRevision, bool) {
	return rs.pointer(set, func(st rolloutState) int64 { return st.Pending })
}

func (rs *Revisions) pointer(set string, which func(rolloutState) int64) (RolloutRevision, bool) {
	var r RolloutRevision
	ok := false
	_ = rs.db.View(func(tx *bolt.Tx) error {
		b, _ := setBucket(tx, set, false)
		if b == nil {
			return nil
		}
		if n := which(readState(b)); n != 0 {
			r, ok = readRevision(b, n)
		}
		return nil
	})
	return r, ok
}

// History returns the set's kept revisions, oldest first.
func (rs *Revisions) History(set string) ([]RolloutRevision, error) {
	var out []RolloutRevision
	err := rs.db.View(func(tx *bolt.Tx) error {
		b, _ := setBucket(tx, set, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			var r RolloutRevision
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("revision %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Sets lists the sets that have revisions, sorted.
func (rs *Revisions) Sets() []string {
	var out []string
	_ = rs.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDesired).Bucket(bucketRevisions).ForEach(func(k, v []byte) error {
			if v == nil {
				out = append(out, string(k))
			}
			return nil
		})
	})
	slices.Sort(out)
	return out
}

// Previous is the Ready revision before the set's current one (ok false
// when there is none kept).
func (rs *Revisions) Previous(set string) (RolloutRevision, bool) {
	cur, ok := rs.Current(set)
	if !ok {
		return RolloutRevision{}, false
	}
	hist, err := rs.History(set)
	if err != nil {
		return RolloutRevision{}, false
	}
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].Number < cur.Number && hist[i].State == RevisionReady && hist[i].Hash != cur.Hash {
			return hist[i], true
		}
	}
	return RolloutRevision{}, false
}

// MarkSeen records hash as the set a watched directory last handed over.
func (rs *Revisions) MarkSeen(set, hash string) error {
	return rs.db.Update(func(tx *bolt.Tx) error {
		b, err := setBucket(tx, set, true)
		if err != nil {
			return err
		}
		st := readState(b)
		if st.Seen == hash {
			return nil
		}
		st.Seen = hash
		return putJSON(b, keyRolloutState, st)
	})
}

// Seen is the hash MarkSeen last recorded for set ("" when none).
func (rs *Revisions) Seen(set string) string {
	var seen string
	_ = rs.db.View(func(tx *bolt.Tx) error {
		if b, _ := setBucket(tx, set, false); b != nil {
			seen = readState(b).Seen
		}
		return nil
	})
	return seen
}
