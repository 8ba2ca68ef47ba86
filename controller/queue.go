package controller

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Queue is a keyed work queue in the manner of client-go's workqueue: a key
// added many times while waiting is processed once; a key added while it is
// being processed is processed again afterwards, never concurrently with
// itself; failed keys come back after a per-key exponential backoff that is
// capped and never gives up.
type Queue[K comparable] struct {
	mu         sync.Mutex
	cond       *sync.Cond
	order      []K
	queued     map[K]bool
	processing map[K]bool
	dirty      map[K]bool // added while processing
	failures   map[K]int
	timers     map[K]*time.Timer
	shutdown   bool
	base, max  time.Duration
}

// NewQueue returns a queue whose retry delay starts at base and doubles up
// to max.
func NewQueue[K comparable](base, max time.Duration) *Queue[K] {
	q := &Queue[K]{
		queued: map[K]bool{}, processing: map[K]bool{}, dirty: map[K]bool{},
		failures: map[K]int{}, timers: map[K]*time.Timer{}, base: base, max: max,
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Add queues key now (cancelling a pending delayed add).
func (q *Queue[K]) Add(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t, ok := q.timers[key]; ok {
		t.Stop()
		delete(q.timers, key)
	}
	q.addLocked(key)
}

func (q *Queue[K]) addLocked(key K) {
	if q.shutdown {
		return
	}
	if q.processing[key] {
		q.dirty[key] = true
		return
	}
	if q.queued[key] {
		return
	}
	q.queued[key] = true
	q.order = append(q.order, key)
	q.cond.Signal()
}

// AddAfter queues key after d, unless an earlier add is already pending.
func (q *Queue[K]) AddAfter(key K, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown || q.queued[key] {
		return
	}
	if t, ok := q.timers[key]; ok {
		t.Stop()
	}
	q.timers[key] = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.timers, key)
		q.addLocked(key)
	})
}

// Retry queues key after its backoff and returns the delay chosen.
func (q *Queue[K]) Retry(key K) time.Duration {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	d := Backoff(q.base, q.max, n)
	q.AddAfter(key, d)
	return d
}

// Failures is how many times in a row key has failed.
func (q *Queue[K]) Failures(key K) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// Forget resets key's backoff after a success.
func (q *Queue[K]) Forget(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// Get blocks for the next key; ok is false once the queue is shut down.
// Call Done(key) when processing ends.
func (q *Queue[K]) Get() (key K, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return key, false
	}
	key = q.order[0]
	q.order = q.order[1:]
	delete(q.queued, key)
	q.processing[key] = true
	return key, true
}

// Done ends processing of key, requeueing it if it was added meanwhile.
func (q *Queue[K]) Done(key K) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] {
		delete(q.dirty, key)
		q.addLocked(key)
	}
}

// Len is how many keys wait (the queue depth).
func (q *Queue[K]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// CountBy counts the waiting keys by group (queue depth per kind).
func (q *Queue[K]) CountBy(group func(K) string) map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[string]int{}
	for _, k := range q.order {
		out[group(k)]++
	}
	return out
}

// ShutDown wakes every Get with ok=false and drops pending timers.
func (q *Queue[K]) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
	q.cond.Broadcast()
}

// Backoff is base·2^n capped at max, with ±10 % jitter so that many keys
// failing together do not retry in lockstep.
func Backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	jitter := time.Duration(float64(d) * 0.1 * (rand.Float64()*2 - 1))
	return d + jitter
}

// run processes keys with fn until ctx ends, one worker per call.
func (q *Queue[K]) run(ctx context.Context, fn func(context.Context, K)) {
	for {
		key, ok := q.Get()
		if !ok || ctx.Err() != nil {
			return
		}
		fn(ctx, key)
		q.Done(key)
	}
}
