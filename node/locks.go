package node

import (
	"context"
	"fmt"
	"sync"
)

// objectLocks serialises the operations that create or remove what one
// container is made of (its record and snapshot, its task, shim, bundle
// and rootfs mount), keyed by "<ns>/<id>". The controller's Container and
// Task reconcilers, and API callers, may act on one container at once;
// without this a slow DeleteTask could unmount and drop a task that a
// faster caller had already recreated. Its zero value is ready to use.
type objectLocks struct {
	mu sync.Mutex
	m  map[string]*objectLock
}

type objectLock struct {
	sem      chan struct{} // holds one token while locked
	refs     int           // holders and waiters; the entry goes at 0
	creating int           // container creates in flight (waiting or holding)
}

// lock takes the lock of ns/id, waiting at most until ctx is done.
// creating marks the caller as a container create for the whole time it
// waits and holds the lock (see creatingContainer).
func (l *objectLocks) lock(ctx context.Context, ns, id string, creating bool) (unlock func(), err error) {
	k := ns + "/" + id
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*objectLock{}
	}
	e := l.m[k]
	if e == nil {
		e = &objectLock{sem: make(chan struct{}, 1)}
		l.m[k] = e
	}
	e.refs++
	if creating {
		e.creating++
	}
	l.mu.Unlock()
	leave := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if creating {
			e.creating--
		}
		if e.refs--; e.refs == 0 {
			delete(l.m, k)
		}
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, fmt.Errorf("wait for other operations on %s in namespace %s: %w", id, ns, ctx.Err())
	}
	return func() {
		<-e.sem
		leave()
	}, nil
}

// creatingContainer reports whether a create of container ns/id is in
// flight.
func (l *objectLocks) creatingContainer(ns, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[ns+"/"+id]
	return e != nil && e.creating > 0
}
