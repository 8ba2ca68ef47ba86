package observed

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func openCommitDB(t *testing.T) *DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d, err := New(db)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Concurrent writes are batched, each still gets its own result, and a
// failing one neither fails nor loses the others of its batch.
func TestGroupCommit(t *testing.T) {
	d := openCommitDB(t)
	errOdd := errors.New("odd")
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("t"))
				if err != nil {
					return err
				}
				if i%2 == 1 {
					_ = b.Put([]byte(fmt.Sprint("odd", i)), []byte("x")) // rolled back
					return errOdd
				}
				return b.Put([]byte(fmt.Sprint(i)), []byte("x"))
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if want := error(nil); i%2 == 1 {
			if !errors.Is(err, errOdd) {
				t.Errorf("write %d: %v, want its own error", i, err)
			}
		} else if err != want {
			t.Errorf("write %d: %v, want nil", i, err)
		}
	}
	_ = d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("t"))
		for i := 0; i < n; i++ {
			got := b.Get([]byte(fmt.Sprint(i))) != nil
			if i%2 == 1 {
				got = b.Get([]byte(fmt.Sprint("odd", i))) != nil
			}
			if want := i%2 == 0; got != want {
				t.Errorf("key of write %d stored %v, want %v", i, got, want)
			}
		}
		return nil
	})
}

// A write's panic reaches its own caller, and the others still commit.
func TestGroupCommit_Panic(t *testing.T) {
	d := openCommitDB(t)
	defer func() {
		if v := recover(); v != "boom" {
			t.Fatalf("recovered %v, want boom", v)
		}
		if err := d.update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("after")); return err }); err != nil {
			t.Fatalf("write after a panic: %v", err)
		}
	}()
	_ = d.update(func(tx *bolt.Tx) error { panic("boom") })
}
