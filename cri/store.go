package cri

import (
	"berth.dev/berth/internal/atomicfile"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
)

// store keeps the CRI's own records — what the kubelet asked of each pod
// sandbox and container, and the state the CRI promised it — as one JSON
// file per object under <root>/cri/<kind>/<id>.json, each written through
// a temporary file, fsynced and renamed, so a berthd killed at any moment
// finds every record whole (old or new) and the kubelet sees the same IDs,
// states and IPs after the restart. The node's own records (containers,
// tasks, attachments) are the truth of what runs; these say what it is to
// the kubelet.
type store[T any] struct {
	dir string
	mu  sync.Mutex
	m   map[string]*T
}

func openStore[T any](dir string) (*store[T], error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cri store %s: %w", dir, err)
	}
	s := &store[T]{dir: dir, m: map[string]*T{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !isHex(id) {
			if strings.HasSuffix(e.Name(), ".tmp") {
				_ = os.Remove(filepath.Join(dir, e.Name())) // a write cut short
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("cri record %s: %w", filepath.Join(dir, e.Name()), err)
		}
		s.m[id] = v
	}
	return s, nil
}

// put writes v as id's record, durably, then keeps it in memory.
func (s *store[T]) put(id string, v *T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := atomicfile.Write(filepath.Join(s.dir, id+".json"), b); err != nil {
		return fmt.Errorf("cri record %s: %w", id, err)
	}
	s.m[id] = v
	return nil
}

// update applies fn to a copy of id's record and stores the result.
func (s *store[T]) update(id string, fn func(*T)) (*T, error) {
	s.mu.Lock()
	cur, ok := s.m[id]
	var c T
	if ok {
		c = *cur
	}
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", id, errdefs.ErrNotFound)
	}
	fn(&c)
	return &c, s.put(id, &c)
}

func (s *store[T]) delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.dir, id+".json")); err != nil && !os.IsNotExist(err) {
		return err
	}
	delete(s.m, id)
	return atomicfile.SyncDir(s.dir)
}

// get returns id's record; id may be a unique prefix (crictl passes what
// the user typed, as it does to containerd). Not found and ambiguous are
// errdefs.ErrNotFound and ErrInvalidArgument.
func (s *store[T]) get(id string) (string, *T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[id]; ok {
		return id, v, nil
	}
	if id == "" {
		return "", nil, fmt.Errorf("empty id: %w", errdefs.ErrNotFound)
	}
	var found string
	for k := range s.m {
		if strings.HasPrefix(k, id) {
			if found != "" {
				return "", nil, fmt.Errorf("id prefix %s is ambiguous: %w", id, errdefs.ErrInvalidArgument)
			}
			found = k
		}
	}
	if found == "" {
		return "", nil, fmt.Errorf("%s: %w", id, errdefs.ErrNotFound)
	}
	return found, s.m[found], nil
}

// list returns every record, by id.
func (s *store[T]) list() []*T {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.m))
	for k := range s.m {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	out := make([]*T, 0, len(ids))
	for _, k := range ids {
		out = append(out, s.m[k])
	}
	return out
}
