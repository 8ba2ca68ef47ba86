package observed

import (
	"context"
	"fmt"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// ObjectStatus is the recorded status of a declared object, with the spec
// hash it was observed against.
type ObjectStatus struct {
	Key      spec.Key `json:"key"`
	SpecHash string   `json:"specHash,omitempty"`
	// Owns names what the object made on the node (a container ID, an
	// image record), so it can be torn down once the object is gone.
	Owns string `json:"owns,omitempty"`
	// Source is the manifest source (a file, or "api") that declared the
	// object: while that source cannot be read, what it made is kept.
	Source string `json:"source,omitempty"`
	// StopTimeout is a Task's stop timeout, so its teardown honours it
	// after the object itself is gone.
	StopTimeout string      `json:"stopTimeout,omitempty"`
	Status      spec.Status `json:"status"`
}

// PutStatus records the status of a declared object, creating its
// namespace when needed (a manifest that names a namespace declares it).
func (d *DB) PutStatus(ctx context.Context, st ObjectStatus) error {
	k := st.Key
	if _, err := d.EnsureNamespace(ctx, k.Namespace); err != nil {
		return err
	}
	return d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, k.Namespace, true, bucketStatus, []byte(k.Kind))
		if err != nil {
			return err
		}
		return putJSON(b, k.Name, st)
	})
}

// GetStatus returns the recorded status of a declared object.
func (d *DB) GetStatus(ctx context.Context, k spec.Key) (ObjectStatus, error) {
	var st ObjectStatus
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, k.Namespace, false, bucketStatus, []byte(k.Kind))
		if err != nil {
			return err
		}
		ok, err := getJSON(b, k.Name, &st)
		if err == nil && !ok {
			err = fmt.Errorf("status of %s: %w", k, errdefs.ErrNotFound)
		}
		return err
	})
	return st, err
}

// ListStatuses lists recorded statuses; an empty namespace or kind matches all.
func (d *DB) ListStatuses(ctx context.Context, ns string, kind spec.Kind) ([]ObjectStatus, error) {
	var out []ObjectStatus
	err := d.db.View(func(tx *bolt.Tx) error {
		return namespacesBucket(tx).ForEachBucket(func(nsName []byte) error {
			if ns != "" && string(nsName) != ns {
				return nil
			}
			sb := namespacesBucket(tx).Bucket(nsName).Bucket(bucketStatus)
			if sb == nil {
				return nil
			}
			return sb.ForEachBucket(func(kindName []byte) error {
				if kind != "" && string(kindName) != string(kind) {
					return nil
				}
				kb := sb.Bucket(kindName)
				return kb.ForEach(func(k, _ []byte) error {
					var st ObjectStatus
					if _, err := getJSON(kb, string(k), &st); err != nil {
						return err
					}
					out = append(out, st)
					return nil
				})
			})
		})
	})
	return out, err
}

// DeleteStatus forgets a declared object's status (no error if absent).
func (d *DB) DeleteStatus(ctx context.Context, k spec.Key) error {
	return d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, k.Namespace, false, bucketStatus, []byte(k.Kind))
		if err != nil || b == nil {
			return nil
		}
		return b.Delete([]byte(k.Name))
	})
}
