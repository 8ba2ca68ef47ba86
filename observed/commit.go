package observed

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the writes of callers that arrive while a commit is in
// flight in one bbolt transaction, so that many reconciles at once (a
// hundred tasks from one manifest) pay one fsync per batch instead of one
// each, bbolt being a single writer. A write that finds no commit in flight
// starts one at once: a lone caller waits for nothing but its own commit,
// unlike bolt.DB.Batch, which holds every batch for MaxBatchDelay.
//
// As with Batch, a function may run more than once (when another function
// of its batch fails, the batch is rolled back and run again without it),
// so the functions given to update must only depend on the transaction.
type groupCommit struct {
	mu      sync.Mutex
	pending []*write
	running bool
}

type write struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// panicked carries a function's panic back to its caller's goroutine.
type panicked struct{ v any }

func (p panicked) Error() string { return fmt.Sprintf("panic in a write: %v", p.v) }

// update is bolt.DB.Update, batched with the writes of concurrent callers.
func (d *DB) update(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 1)}
	g := &d.commits
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if !g.running {
		g.running = true
		go d.commitLoop()
	}
	g.mu.Unlock()
	err := <-w.done
	var p panicked
	if errors.As(err, &p) {
		panic(p.v)
	}
	return err
}

// commitLoop commits the pending writes, batch after batch, until none is
// left.
func (d *DB) commitLoop() {
	g := &d.commits
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		d.commitBatch(batch)
	}
}

// commitBatch runs batch in one transaction. A function that fails gets
// its error, alone (the transaction is rolled back: a function sees the
// writes of those before it in its batch, as if they had committed), and
// the others are run again without it.
func (d *DB) commitBatch(batch []*write) {
	for len(batch) > 0 {
		failed, ferr := -1, error(nil)
		err := d.db.Update(func(tx *bolt.Tx) error {
			for i, w := range batch {
				if err := runWrite(w.fn, tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, w := range batch {
				w.done <- err // nil, or the commit's own error for all
			}
			return
		}
		batch[failed].done <- ferr
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

func runWrite(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicked{v}
		}
	}()
	return fn(tx)
}
