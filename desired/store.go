package desired

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/spec"
)

// SourceAPI is the source name of objects applied through the API.
const SourceAPI = "api"

// Entry is one object in force, with where it came from.
type Entry struct {
	Key spec.Key
	// Source is the file path or SourceAPI that owns the object.
	Source string
	// Generation starts at 1 and is bumped whenever Hash changes. It is
	// monotonic within a process only: compare Hash across restarts.
	Generation int64
	// Hash is spec.Hash of the object.
	Hash string
	// Object is defaulted and validated, with an empty Status.
	Object spec.Object
}

// Conflict is a source that declares a key another source owns. It
// changes nothing; it is reported until one of them stops declaring it.
type Conflict struct {
	Key    spec.Key
	Owner  string
	Source string
	Since  time.Time
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s: declared by %s, owned by %s", c.Key, c.Source, c.Owner)
}

// SourceUpdate replaces the whole set of one source.
type SourceUpdate struct {
	Source string
	// Objects is the source's new set. Ignored when Err is set.
	Objects []spec.Object
	// Err says the source could not be read: its last good objects stay
	// in force and Err is reported.
	Err error
	// Remove drops the source and everything it declared.
	Remove bool
	// Revision identifies the content read, such as a file's digest.
	Revision string
}

// SourceStatus is what Sources reports of one source.
type SourceStatus struct {
	Name     string
	Revision string
	// Objects is how many objects the source declares (owned or not).
	Objects int
	// Err is the last read's error, nil when it read cleanly.
	Err     error
	ErrTime time.Time
	// Updated is when the last good set was taken in.
	Updated time.Time
}

// Filter selects entries; empty fields match everything.
type Filter struct {
	Namespace string
	Kind      spec.Kind
}

type sourceState struct {
	status   SourceStatus
	declared map[spec.Key]declaration
}

type declaration struct {
	obj  spec.Object
	hash string
	seq  uint64 // when the source started declaring the key: oldest wins
}

// Store is the desired state: objects keyed by (namespace, kind, name),
// each owned by one source. Sources replace their whole set at once; the
// store works out owners, generations and conflicts, and tells
// subscribers which keys changed. Safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	now       func() time.Time
	seq       uint64
	entries   map[spec.Key]*Entry
	gens      map[spec.Key]int64 // last generation, kept after deletion
	sources   map[string]*sourceState
	conflicts map[spec.Key][]Conflict
	pending   map[string]bool // sources expected to report before Synced
	subs      map[*subscriber]struct{}
	watchers  map[*watcher]struct{}
	// synced is closed once every expected source has read once; Expect
	// after that opens a new one.
	defaults     spec.NodeDefaults
	synced       chan struct{}
	syncedClosed bool
	// sourceSubs are told (coalesced) when a source's status changes.
	sourceSubs map[chan struct{}]struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		now:          time.Now,
		entries:      map[spec.Key]*Entry{},
		gens:         map[spec.Key]int64{},
		sources:      map[string]*sourceState{},
		conflicts:    map[spec.Key][]Conflict{},
		pending:      map[string]bool{},
		subs:         map[*subscriber]struct{}{},
		watchers:     map[*watcher]struct{}{},
		sourceSubs:   map[chan struct{}]struct{}{},
		synced:       closedChan(),
		syncedClosed: true,
	}
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// Get returns the entry in force for key.
func (s *Store) Get(key spec.Key) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return Entry{}, false
	}
	return copyEntry(e), true
}

func copyEntry(e *Entry) Entry {
	c := *e
	c.Object = e.Object.DeepCopy()
	return c
}

// List returns the entries matching f, sorted by kind order, namespace
// and name.
func (s *Store) List(f Filter) []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for k, e := range s.entries {
		if (f.Namespace == "" || k.Namespace == f.Namespace) && (f.Kind == "" || k.Kind == f.Kind) {
			out = append(out, copyEntry(e))
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return compareKeys(a.Key, b.Key) })
	return out
}

func compareKeys(a, b spec.Key) int {
	if c := slices.Index(spec.Kinds, a.Kind) - slices.Index(spec.Kinds, b.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// Sources reports every source, sorted by name.
func (s *Store) Sources() []SourceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SourceStatus, 0, len(s.sources))
	for _, st := range s.sources {
		out = append(out, st.status)
	}
	slices.SortFunc(out, func(a, b SourceStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Conflicts returns every conflict, sorted by key then source.
func (s *Store) Conflicts() []Conflict {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Conflict
	for _, cs := range s.conflicts {
		out = append(out, cs...)
	}
	slices.SortFunc(out, func(a, b Conflict) int {
		if c := compareKeys(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	return out
}

// ConflictsFor returns the conflicts on one key.
func (s *Store) ConflictsFor(key spec.Key) []Conflict {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conflicts[key])
}

// Expect registers a source that must report once before Synced is true.
// A source calls it when it is created, before it is run.
func (s *Store) Expect(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[name] = true
	if s.syncedClosed {
		s.synced, s.syncedClosed = make(chan struct{}), false
	}
}

// MarkSynced says the source registered with Expect has read everything
// once. The controller deletes nothing before every source is synced.
func (s *Store) MarkSynced(name string) {
	s.mu.Lock()
	delete(s.pending, name)
	if len(s.pending) == 0 && !s.syncedClosed {
		close(s.synced)
		s.syncedClosed = true
	}
	s.mu.Unlock()
}

// SetDefaults sets the node's defaults that Resolve fills in. Call it
// before any source runs: objects already in the store keep what they were
// resolved with.
func (s *Store) SetDefaults(d spec.NodeDefaults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaults = d
}

// Resolve is o defaulted as the store defaults what a source gives it (the
// node's defaults included), so a caller comparing with an entry in force
// (berth diff) sees what the store would hold.
func (s *Store) Resolve(o spec.Object) spec.Object {
	s.mu.Lock()
	d := s.defaults
	s.mu.Unlock()
	return d.Resolve(o)
}

// WhenSynced returns a channel closed once every expected source has read
// once, so a waiter is told rather than polling Synced.
func (s *Store) WhenSynced() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

// Synced reports whether every expected source has read once.
func (s *Store) Synced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending) == 0
}
