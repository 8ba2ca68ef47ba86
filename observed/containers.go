package observed

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// Container is a container record: an image, the writable snapshot
// prepared for it, and the OCI runtime spec generated for it.
type Container struct {
	ID          string `json:"id"`
	Image       string `json:"image"`
	ImageDigest string `json:"imageDigest"`
	Snapshotter string `json:"snapshotter"`
	// SnapshotKey is the key the snapshotter stores ("<ns>/<id>").
	SnapshotKey string `json:"snapshotKey"`
	Runtime     string `json:"runtime,omitempty"`
	// Settings are what the user asked for (the node's own JSON), kept so
	// the spec can be explained and regenerated.
	Settings json.RawMessage `json:"settings,omitempty"`
	// Spec is the generated OCI runtime spec (JSON); SpecHash its sha256.
	Spec      json.RawMessage   `json:"spec"`
	SpecHash  string            `json:"specHash"`
	Labels    map[string]string `json:"labels,omitempty"`
	LastExit  *Exit             `json:"lastExit,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// Exit is the last exit of a container's task as it was reported on the
// event bus. It is the durable "reported once" marker: an exit whose time
// equals LastExit's has been reported already, also across restarts.
type Exit struct {
	Pid        uint32    `json:"pid"`
	ExitStatus uint32    `json:"exitStatus"`
	ExitedAt   time.Time `json:"exitedAt"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
}

// GetContainer returns a namespace's container, or ErrNotFound.
func (d *DB) GetContainer(ctx context.Context, ns, id string) (Container, error) {
	var c Container
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, false, bucketContainers)
		if err != nil {
			return err
		}
		ok, err := getJSON(b, id, &c)
		if err == nil && !ok {
			err = fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		return err
	})
	return c, err
}

// ListContainers lists a namespace's containers in id order.
func (d *DB) ListContainers(ctx context.Context, ns string) ([]Container, error) {
	var out []Container
	err := d.db.View(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, false, bucketContainers)
		if err != nil || b == nil {
			return err
		}
		return b.ForEach(func(k, _ []byte) error {
			var c Container
			if _, err := getJSON(b, string(k), &c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// CreateContainer records a new container; ErrAlreadyExists if the id is
// taken.
func (d *DB) CreateContainer(ctx context.Context, ns string, c Container) (Container, error) {
	if err := spec.ValidateName("container id", c.ID); err != nil {
		return c, err
	}
	err := d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, true, bucketContainers)
		if err != nil {
			return err
		}
		if b.Get([]byte(c.ID)) != nil {
			return fmt.Errorf("container %q in namespace %q: %w", c.ID, ns, errdefs.ErrAlreadyExists)
		}
		t := now()
		c.CreatedAt, c.UpdatedAt = t, t
		return putJSON(b, c.ID, c)
	})
	return c, err
}

// UpdateContainer applies fn to a stored container in one transaction.
func (d *DB) UpdateContainer(ctx context.Context, ns, id string, fn func(*Container) error) (Container, error) {
	var c Container
	err := d.update(func(tx *bolt.Tx) error {
		c = Container{} // a batch may run this again (see update)
		b, err := childBucket(tx, ns, true, bucketContainers)
		if err != nil {
			return err
		}
		ok, err := getJSON(b, id, &c)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		if err := fn(&c); err != nil {
			return err
		}
		c.ID = id
		c.UpdatedAt = now()
		return putJSON(b, id, c)
	})
	return c, err
}

// DeleteContainer removes a container record; ErrNotFound if absent.
func (d *DB) DeleteContainer(ctx context.Context, ns, id string) error {
	return d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, false, bucketContainers)
		if err != nil {
			return err
		}
		if b == nil || b.Get([]byte(id)) == nil {
			return fmt.Errorf("container %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}
