package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/snapshot"
)

var (
	bucketV1        = []byte("v1")
	bucketSnapshots = []byte("snapshots")
	bucketParents   = []byte("parents")
	keyID           = []byte("id")
	keyKind         = []byte("kind")
	keyParent       = []byte("parent")
	keyCreated      = []byte("created")
	keyUpdated      = []byte("updated")
	bucketLabels    = []byte("labels")
)

// Snapshot is what an implementation needs to know to build mounts.
type Snapshot struct {
	ID   uint64
	Kind snapshot.Kind
	// ParentIDs is the chain of committed parents, nearest first.
	ParentIDs []uint64
}

// Store is the metadata database plus the snapshots directory.
type Store struct {
	root      string
	db        *bolt.DB
	removeAll func(string) error
}

// Options configure OpenWith.
type Options struct {
	// RemoveAll deletes a snapshot's directory (default os.RemoveAll); the
	// btrfs snapshotter deletes its subvolumes with their ioctl, since a
	// read-only subvolume's files cannot be unlinked.
	RemoveAll func(string) error
}

// Open opens (creating) root/metadata.db and root/snapshots, and repairs
// what a crash left behind (see the package comment).
func Open(root string) (*Store, error) { return OpenWith(root, Options{}) }

// OpenWith is Open with options.
func OpenWith(root string, opts Options) (*Store, error) {
	if opts.RemoveAll == nil {
		opts.RemoveAll = os.RemoveAll
	}
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("snapshot storage: %w", err)
	}
	if err := os.Chmod(root, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot storage: %w", err)
	}
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("snapshot storage: open metadata: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return err
		}
		if _, err := v1.CreateBucketIfNotExists(bucketSnapshots); err != nil {
			return err
		}
		_, err = v1.CreateBucketIfNotExists(bucketParents)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("snapshot storage: init buckets: %w", err)
	}
	s := &Store{root: root, db: db, removeAll: opts.RemoveAll}
	if err := s.repair(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// SnapshotsDir is root/snapshots.
func (s *Store) SnapshotsDir() string { return filepath.Join(s.root, "snapshots") }

// Dir is the directory of snapshot id.
func (s *Store) Dir(id uint64) string {
	return filepath.Join(s.root, "snapshots", strconv.FormatUint(id, 10))
}

// repair brings the snapshots directory in line with the metadata.
func (s *Store) repair() error {
	ids := map[uint64]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return snapshotsBucket(tx).ForEachBucket(func(k []byte) error {
			ids[readID(snapshotsBucket(tx).Bucket(k))] = true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("snapshot storage: read metadata: %w", err)
	}
	dir := s.SnapshotsDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("snapshot storage: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(dir, name)
		if rest, ok := strings.CutPrefix(name, "rm-"); ok {
			if id, err := strconv.ParseUint(rest, 10, 64); err == nil && ids[id] {
				// The removal's transaction never committed: restore.
				slog.Warn("snapshot storage: restoring snapshot whose removal did not commit", "id", id)
				if err := os.Rename(p, s.Dir(id)); err != nil {
					return fmt.Errorf("snapshot storage: restore %s: %w", name, err)
				}
				continue
			}
		} else if id, err := strconv.ParseUint(name, 10, 64); err == nil && ids[id] {
			continue
		}
		slog.Info("snapshot storage: removing leftover directory", "dir", p)
		if err := s.removeAll(p); err != nil {
			return fmt.Errorf("snapshot storage: remove leftover %s: %w", p, err)
		}
	}
	return syncDir(dir)
}

func snapshotsBucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket(bucketV1).Bucket(bucketSnapshots)
}

func parentsBucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket(bucketV1).Bucket(bucketParents)
}

func readID(b *bolt.Bucket) uint64 {
	v := b.Get(keyID)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func idBytes(id uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, id)
}

func readInfo(key string, b *bolt.Bucket) snapshot.Info {
	info := snapshot.Info{Name: key, Parent: string(b.Get(keyParent))}
	if v := b.Get(keyKind); len(v) == 1 {
		info.Kind = snapshot.Kind(v[0])
	}
	_ = info.Created.UnmarshalBinary(b.Get(keyCreated))
	_ = info.Updated.UnmarshalBinary(b.Get(keyUpdated))
	if lb := b.Bucket(bucketLabels); lb != nil {
		info.Labels = map[string]string{}
		_ = lb.ForEach(func(k, v []byte) error {
			info.Labels[string(k)] = string(v)
			return nil
		})
	}
	return info
}

func writeTimes(b *bolt.Bucket, created, updated time.Time) error {
	if !created.IsZero() {
		c, err := created.MarshalBinary()
		if err != nil {
			return err
		}
		if err := b.Put(keyCreated, c); err != nil {
			return err
		}
	}
	u, err := updated.MarshalBinary()
	if err != nil {
		return err
	}
	return b.Put(keyUpdated, u)
}

func writeLabels(b *bolt.Bucket, labels map[string]string) error {
	if b.Bucket(bucketLabels) != nil {
		if err := b.DeleteBucket(bucketLabels); err != nil {
			return err
		}
	}
	if len(labels) == 0 {
		return nil
	}
	lb, err := b.CreateBucket(bucketLabels)
	if err != nil {
		return err
	}
	for k, v := range labels {
		if err := lb.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

// chain returns the committed chain ids starting at key, nearest first.
func chain(tx *bolt.Tx, key string) ([]uint64, error) {
	var ids []uint64
	for key != "" {
		b := snapshotsBucket(tx).Bucket([]byte(key))
		if b == nil {
			return nil, fmt.Errorf("parent %q: %w", key, errdefs.ErrNotFound)
		}
		ids = append(ids, readID(b))
		key = string(b.Get(keyParent))
	}
	return ids, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("empty snapshot key: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}
