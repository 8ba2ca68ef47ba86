package observed

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

var bucketLeases = []byte("leases")

// Resource types a lease holds, as containerd names them. Snapshots are
// "snapshots/<snapshotter>".
const (
	ResourceContent  = "content"
	ResourceIngests  = "ingests"
	ResourceSnapshot = "snapshots"
)

// Lease keeps what it holds from garbage collection until it is deleted or
// expires. Its record lives in the namespace's bucket, so a namespace with
// leases is not empty.
type Lease struct {
	ID        string            `json:"id"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	// Expires is when the lease ends by itself; zero is never.
	Expires   time.Time       `json:"expires,omitzero"`
	Resources []LeaseResource `json:"resources,omitempty"`
}

// LeaseResource is one thing a lease holds: a blob's digest (content), an
// ingest's ref (ingests) or a snapshot's key (snapshots/<snapshotter>).
type LeaseResource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Expired reports whether the lease has ended at t.
func (l Lease) Expired(t time.Time) bool { return !l.Expires.IsZero() && !t.Before(l.Expires) }

var leaseID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,75}$`)

// ValidateLeaseResource checks a resource's type.
func ValidateLeaseResource(r LeaseResource) error {
	switch {
	case r.ID == "":
		return fmt.Errorf("lease resource of type %q has no id: %w", r.Type, errdefs.ErrInvalidArgument)
	case r.Type == ResourceContent, r.Type == ResourceIngests:
		return nil
	case len(r.Type) > len(ResourceSnapshot)+1 && r.Type[:len(ResourceSnapshot)+1] == ResourceSnapshot+"/":
		return nil
	}
	return fmt.Errorf("lease resource type %q: want content, ingests or snapshots/<snapshotter>: %w", r.Type, errdefs.ErrInvalidArgument)
}

// CreateLease records a new lease in ns.
func (d *DB) CreateLease(ctx context.Context, ns string, l Lease) (Lease, error) {
	if !leaseID.MatchString(l.ID) {
		return l, fmt.Errorf("lease id %q: letters, digits, '.', '_' and '-', at most 76: %w", l.ID, errdefs.ErrInvalidArgument)
	}
	for _, r := range l.Resources {
		if err := ValidateLeaseResource(r); err != nil {
			return l, err
		}
	}
	if l.CreatedAt.IsZero() {
		l.CreatedAt = now()
	}
	err := d.update(func(tx *bolt.Tx) error {
		b, err := childBucket(tx, ns, true, bucketLeases)
		if err != nil {
			return err
		}
		if b.Get([]byte(l.ID)) != nil {
			return fmt.Errorf("lease %q in namespace %q: %w", l.ID, ns, errdefs.ErrAlreadyExists)
		}
		return putJSON(b, l.ID, l)
	})
	return l, err
}

// GetLease reads a lease of ns.
func (d *DB) GetLease(ctx context.Context, ns, id string) (Lease, error) {
	var l Lease
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		l, err = getLease(tx, ns, id)
		return err
	})
	return l, err
}

func getLease(tx *bolt.Tx, ns, id string) (Lease, error) {
	var l Lease
	if _, err := nsBucket(tx, ns); err != nil {
		return l, err
	}
	b, _ := childBucket(tx, ns, false, bucketLeases)
	ok, err := getJSON(b, id, &l)
	if err == nil && !ok {
		err = fmt.Errorf("lease %q in namespace %q: %w", id, ns, errdefs.ErrNotFound)
	}
	return l, err
}

// ListLeases lists the leases of ns, by ID.
func (d *DB) ListLeases(ctx context.Context, ns string) ([]Lease, error) {
	var out []Lease
	err := d.db.View(func(tx *bolt.Tx) error {
		if _, err := nsBucket(tx, ns); err != nil {
			return err
		}
		b, _ := childBucket(tx, ns, false, bucketLeases)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("decode lease %s: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// AllLeases lists the leases of every namespace.
func (d *DB) AllLeases(ctx context.Context) (map[string][]Lease, error) {
	nss, err := d.ListNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]Lease{}
	for _, n := range nss {
		ls, err := d.ListLeases(ctx, n.Name)
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, err
		}
		if len(ls) > 0 {
			out[n.Name] = ls
		}
	}
	return out, nil
}

// DeleteLease removes a lease; what it held is then only as safe as other
// references make it.
func (d *DB) DeleteLease(ctx context.Context, ns, id string) error {
	return d.update(func(tx *bolt.Tx) error {
		if _, err := getLease(tx, ns, id); err != nil {
			return err
		}
		b, _ := childBucket(tx, ns, false, bucketLeases)
		return b.Delete([]byte(id))
	})
}

// AddLeaseResources adds resources to a lease (present ones are kept once).
func (d *DB) AddLeaseResources(ctx context.Context, ns, id string, rs ...LeaseResource) error {
	for _, r := range rs {
		if err := ValidateLeaseResource(r); err != nil {
			return err
		}
	}
	return d.updateLease(ns, id, func(l *Lease) {
		for _, r := range rs {
			if !slices.Contains(l.Resources, r) {
				l.Resources = append(l.Resources, r)
			}
		}
	})
}

// RemoveLeaseResources drops resources from a lease.
func (d *DB) RemoveLeaseResources(ctx context.Context, ns, id string, rs ...LeaseResource) error {
	return d.updateLease(ns, id, func(l *Lease) {
		l.Resources = slices.DeleteFunc(l.Resources, func(r LeaseResource) bool { return slices.Contains(rs, r) })
	})
}

func (d *DB) updateLease(ns, id string, fn func(*Lease)) error {
	return d.update(func(tx *bolt.Tx) error {
		l, err := getLease(tx, ns, id)
		if err != nil {
			return err
		}
		fn(&l)
		b, _ := childBucket(tx, ns, false, bucketLeases)
		return putJSON(b, id, l)
	})
}
