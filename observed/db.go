package observed

import (
	"encoding/json"
	"fmt"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketV1         = []byte("v1")
	bucketNamespaces = []byte("namespaces")
	bucketImages     = []byte("images")
	bucketContainers = []byte("containers")
	bucketStatus     = []byte("status")
	keyMeta          = []byte("meta")
)

// DB is the observed-state database.
type DB struct {
	db      *bolt.DB
	commits groupCommit
}

// New wraps an open bbolt database and makes sure the default namespace
// exists.
func New(db *bolt.DB) (*DB, error) {
	d := &DB{db: db}
	err := db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		nss, err := v1.CreateBucketIfNotExists(bucketNamespaces)
		if err != nil {
			return err
		}
		if nss.Bucket([]byte(spec.DefaultNamespace)) == nil {
			return createNamespace(nss, Namespace{Name: spec.DefaultNamespace, CreatedAt: now()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("init observed state: %w", err)
	}
	return d, nil
}

func namespacesBucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket(bucketV1).Bucket(bucketNamespaces)
}

// nsBucket returns the namespace's bucket, or ErrNotFound.
func nsBucket(tx *bolt.Tx, ns string) (*bolt.Bucket, error) {
	b := namespacesBucket(tx).Bucket([]byte(ns))
	if b == nil {
		return nil, fmt.Errorf("namespace %q: %w (create it with: berth namespace create %s)", ns, errdefs.ErrNotFound, ns)
	}
	return b, nil
}

// childBucket returns (creating when write) a nested bucket of a namespace.
func childBucket(tx *bolt.Tx, ns string, write bool, names ...[]byte) (*bolt.Bucket, error) {
	b, err := nsBucket(tx, ns)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if write {
			if b, err = b.CreateBucketIfNotExists(n); err != nil {
				return nil, err
			}
			continue
		}
		if b = b.Bucket(n); b == nil {
			return nil, nil
		}
	}
	return b, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func getJSON(b *bolt.Bucket, key string, v any) (bool, error) {
	if b == nil {
		return false, nil
	}
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}
