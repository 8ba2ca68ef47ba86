package observed

import (
	"context"
	"fmt"
	"time"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// Namespace is a tenant's partition of the node.
type Namespace struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
}

func now() time.Time { return time.Now().UTC() }

func createNamespace(nss *bolt.Bucket, n Namespace) error {
	b, err := nss.CreateBucket([]byte(n.Name))
	if err != nil {
		return err
	}
	return putJSON(b, string(keyMeta), n)
}

// CreateNamespace creates a namespace; ErrAlreadyExists if it exists.
func (d *DB) CreateNamespace(ctx context.Context, n Namespace) (Namespace, error) {
	if err := spec.ValidateNamespace(n.Name); err != nil {
		return Namespace{}, err
	}
	n.CreatedAt = now()
	err := d.update(func(tx *bolt.Tx) error {
		nss := namespacesBucket(tx)
		if nss.Bucket([]byte(n.Name)) != nil {
			return fmt.Errorf("namespace %q: %w", n.Name, errdefs.ErrAlreadyExists)
		}
		return createNamespace(nss, n)
	})
	return n, err
}

// EnsureNamespace creates a namespace if it does not exist (used by the
// controllers: a manifest that names a namespace declares it).
func (d *DB) EnsureNamespace(ctx context.Context, name string) (created bool, err error) {
	if err := spec.ValidateNamespace(name); err != nil {
		return false, err
	}
	// Most calls find it: look first, so they cost no write (and no fsync).
	exists := false
	_ = d.db.View(func(tx *bolt.Tx) error {
		exists = namespacesBucket(tx).Bucket([]byte(name)) != nil
		return nil
	})
	if exists {
		return false, nil
	}
	err = d.update(func(tx *bolt.Tx) error {
		nss := namespacesBucket(tx)
		if nss.Bucket([]byte(name)) != nil {
			return nil
		}
		created = true
		return createNamespace(nss, Namespace{Name: name, CreatedAt: now()})
	})
	return created, err
}

// GetNamespace returns a namespace or ErrNotFound.
func (d *DB) GetNamespace(ctx context.Context, name string) (Namespace, error) {
	var n Namespace
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, name)
		if err != nil {
			return err
		}
		_, err = getJSON(b, string(keyMeta), &n)
		return err
	})
	return n, err
}

// ListNamespaces lists namespaces in name order.
func (d *DB) ListNamespaces(ctx context.Context) ([]Namespace, error) {
	var out []Namespace
	err := d.db.View(func(tx *bolt.Tx) error {
		return namespacesBucket(tx).ForEachBucket(func(k []byte) error {
			var n Namespace
			if _, err := getJSON(namespacesBucket(tx).Bucket(k), string(keyMeta), &n); err != nil {
				return err
			}
			n.Name = string(k)
			out = append(out, n)
			return nil
		})
	})
	return out, err
}

// DeleteNamespace removes an empty namespace. A namespace that still holds
// images, containers or declared objects is refused with
// ErrFailedPrecondition naming what is left; the default namespace cannot
// be removed.
func (d *DB) DeleteNamespace(ctx context.Context, name string) error {
	if name == spec.DefaultNamespace {
		return fmt.Errorf("namespace %q cannot be removed: %w", name, errdefs.ErrFailedPrecondition)
	}
	return d.update(func(tx *bolt.Tx) error {
		b, err := nsBucket(tx, name)
		if err != nil {
			return err
		}
		for _, child := range [][]byte{bucketImages, bucketContainers, bucketStatus, bucketLeases} {
			if c := b.Bucket(child); c != nil && !emptyTree(c) {
				return fmt.Errorf("namespace %q still holds %s: %w", name, child, errdefs.ErrFailedPrecondition)
			}
		}
		return namespacesBucket(tx).DeleteBucket([]byte(name))
	})
}

func emptyTree(b *bolt.Bucket) bool {
	empty := true
	_ = b.ForEach(func(k, v []byte) error {
		if v != nil {
			empty = false
			return errStop
		}
		if !emptyTree(b.Bucket(k)) {
			empty = false
			return errStop
		}
		return nil
	})
	return empty
}

var errStop = fmt.Errorf("stop")
