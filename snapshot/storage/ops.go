package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"berth.dev/berth/snapshot"
)

// Get returns the id, kind and parent chain of key.
func (s *Store) Get(ctx context.Context, key string) (Snapshot, error) {
	var sn Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		b := snapshotsBucket(tx).Bucket([]byte(key))
		if b == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
		}
		sn.ID = readID(b)
		sn.Kind = readInfo(key, b).Kind
		ids, err := chain(tx, string(b.Get(keyParent)))
		sn.ParentIDs = ids
		return err
	})
	return sn, err
}

// Stat returns the Info of key.
func (s *Store) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	var info snapshot.Info
	err := s.db.View(func(tx *bolt.Tx) error {
		b := snapshotsBucket(tx).Bucket([]byte(key))
		if b == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
		}
		info = readInfo(key, b)
		return nil
	})
	return info, err
}

// Update changes labels: fieldpaths "labels" (all) or "labels.<name>"; no
// fieldpaths means all labels. Other fields are immutable.
func (s *Store) Update(ctx context.Context, info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	var out snapshot.Info
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := snapshotsBucket(tx).Bucket([]byte(info.Name))
		if b == nil {
			return fmt.Errorf("snapshot %q: %w", info.Name, errdefs.ErrNotFound)
		}
		cur := readInfo(info.Name, b)
		labels := cur.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		if len(fieldpaths) == 0 {
			labels = info.Labels
		}
		for _, fp := range fieldpaths {
			switch {
			case fp == "labels":
				labels = info.Labels
			case strings.HasPrefix(fp, "labels."):
				name := strings.TrimPrefix(fp, "labels.")
				if v, ok := info.Labels[name]; ok {
					labels[name] = v
				} else {
					delete(labels, name)
				}
			default:
				return fmt.Errorf("update snapshot %q: field %q is not updatable: %w", info.Name, fp, errdefs.ErrInvalidArgument)
			}
		}
		if err := writeLabels(b, labels); err != nil {
			return err
		}
		if err := writeTimes(b, time.Time{}, time.Now().UTC()); err != nil {
			return err
		}
		out = readInfo(info.Name, b)
		return nil
	})
	return out, err
}

// Walk calls fn for every snapshot, in key order.
func (s *Store) Walk(ctx context.Context, fn snapshot.WalkFunc) error {
	var infos []snapshot.Info
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := snapshotsBucket(tx)
		return sb.ForEachBucket(func(k []byte) error {
			infos = append(infos, readInfo(string(k), sb.Bucket(k)))
			return nil
		})
	})
	if err != nil {
		return err
	}
	// fn runs outside the transaction so it may call back into the store.
	for _, info := range infos {
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Create adds an active or view snapshot key on parent. build fills a fresh
// directory (to become root/snapshots/<id>) given the parent chain, nearest
// first; it runs before the metadata transaction, so a slow copy does not
// block the database.
func (s *Store) Create(ctx context.Context, kind snapshot.Kind, key, parent string, opts []snapshot.Opt,
	build func(dir string, parentIDs []uint64) error) (Snapshot, error) {
	if err := checkKey(key); err != nil {
		return Snapshot{}, err
	}
	info := snapshot.Info{Kind: kind, Name: key, Parent: parent}
	for _, o := range opts {
		if err := o(&info); err != nil {
			return Snapshot{}, err
		}
	}
	var parentIDs []uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if snapshotsBucket(tx).Bucket([]byte(key)) != nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		ids, err := committedChain(tx, parent)
		parentIDs = ids
		return err
	})
	if err != nil {
		return Snapshot{}, err
	}
	tmp, err := os.MkdirTemp(s.SnapshotsDir(), "new-")
	if err != nil {
		return Snapshot{}, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		s.removeAll(tmp)
		return Snapshot{}, err
	}
	if err := build(tmp, parentIDs); err != nil {
		s.removeAll(tmp)
		return Snapshot{}, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	if err := ctxErr(ctx); err != nil {
		s.removeAll(tmp)
		return Snapshot{}, err
	}
	sn := Snapshot{Kind: kind, ParentIDs: parentIDs}
	renamed := false
	err = s.db.Update(func(tx *bolt.Tx) error {
		sb := snapshotsBucket(tx)
		// Re-check under the write lock: another Create or a Remove of the
		// parent may have happened while build ran.
		ids, err := committedChain(tx, parent)
		if err != nil {
			return err
		}
		if len(ids) != len(parentIDs) || (len(ids) > 0 && ids[0] != parentIDs[0]) {
			return fmt.Errorf("parent %q changed while creating %q: %w", parent, key, errdefs.ErrAborted)
		}
		b, err := sb.CreateBucket([]byte(key))
		if errors.Is(err, bolt.ErrBucketExists) {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		} else if err != nil {
			return err
		}
		id, err := sb.NextSequence()
		if err != nil {
			return err
		}
		sn.ID = id
		now := time.Now().UTC()
		if err := b.Put(keyID, idBytes(id)); err != nil {
			return err
		}
		if err := b.Put(keyKind, []byte{byte(kind)}); err != nil {
			return err
		}
		if parent != "" {
			if err := b.Put(keyParent, []byte(parent)); err != nil {
				return err
			}
			pk := append(idBytes(parentIDs[0]), idBytes(id)...)
			if err := parentsBucket(tx).Put(pk, []byte(key)); err != nil {
				return err
			}
		}
		if err := writeTimes(b, now, now); err != nil {
			return err
		}
		if err := writeLabels(b, info.Labels); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.Dir(id)); err != nil {
			return err
		}
		renamed = true
		return syncDir(s.SnapshotsDir())
	})
	if err != nil {
		if renamed {
			s.removeAll(s.Dir(sn.ID))
		}
		s.removeAll(tmp)
		return Snapshot{}, err
	}
	return sn, nil
}

func committedChain(tx *bolt.Tx, parent string) ([]uint64, error) {
	if parent == "" {
		return nil, nil
	}
	pb := snapshotsBucket(tx).Bucket([]byte(parent))
	if pb == nil {
		return nil, fmt.Errorf("parent %q: %w", parent, errdefs.ErrNotFound)
	}
	if readInfo(parent, pb).Kind != snapshot.KindCommitted {
		return nil, fmt.Errorf("parent %q is not committed: %w", parent, errdefs.ErrInvalidArgument)
	}
	return chain(tx, parent)
}

// Commit turns active key into committed name, keeping its directory.
func (s *Store) Commit(ctx context.Context, name, key string, opts []snapshot.Opt) (Snapshot, error) {
	if err := checkKey(name); err != nil {
		return Snapshot{}, err
	}
	var sn Snapshot
	err := s.db.Update(func(tx *bolt.Tx) error {
		sb := snapshotsBucket(tx)
		b := sb.Bucket([]byte(key))
		if b == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
		}
		old := readInfo(key, b)
		if old.Kind != snapshot.KindActive {
			return fmt.Errorf("commit %q: snapshot is %s, not active: %w", key, old.Kind, errdefs.ErrFailedPrecondition)
		}
		if sb.Bucket([]byte(name)) != nil {
			return fmt.Errorf("commit %q to %q: %w", key, name, errdefs.ErrAlreadyExists)
		}
		info := snapshot.Info{Labels: old.Labels}
		for _, o := range opts {
			if err := o(&info); err != nil {
				return err
			}
		}
		id := readID(b)
		nb, err := sb.CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		if err := nb.Put(keyID, idBytes(id)); err != nil {
			return err
		}
		if err := nb.Put(keyKind, []byte{byte(snapshot.KindCommitted)}); err != nil {
			return err
		}
		if old.Parent != "" {
			if err := nb.Put(keyParent, []byte(old.Parent)); err != nil {
				return err
			}
			pb := sb.Bucket([]byte(old.Parent))
			pk := append(idBytes(readID(pb)), idBytes(id)...)
			if err := parentsBucket(tx).Put(pk, []byte(name)); err != nil {
				return err
			}
		}
		now := time.Now().UTC()
		if err := writeTimes(nb, now, now); err != nil {
			return err
		}
		if err := writeLabels(nb, info.Labels); err != nil {
			return err
		}
		if err := sb.DeleteBucket([]byte(key)); err != nil {
			return err
		}
		ids, err := chain(tx, old.Parent)
		sn = Snapshot{ID: id, Kind: snapshot.KindCommitted, ParentIDs: ids}
		return err
	})
	return sn, err
}

// Remove deletes key's metadata and directory. A snapshot with children is
// refused with errdefs.ErrFailedPrecondition.
func (s *Store) Remove(ctx context.Context, key string) error {
	var id uint64
	trashed := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		sb := snapshotsBucket(tx)
		b := sb.Bucket([]byte(key))
		if b == nil {
			return fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
		}
		id = readID(b)
		prefix := idBytes(id)
		c := parentsBucket(tx).Cursor()
		if k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return fmt.Errorf("remove %q: it has child %q: %w", key, v, errdefs.ErrFailedPrecondition)
		}
		if parent := string(b.Get(keyParent)); parent != "" {
			if pb := sb.Bucket([]byte(parent)); pb != nil {
				if err := parentsBucket(tx).Delete(append(idBytes(readID(pb)), prefix...)); err != nil {
					return err
				}
			}
		}
		if err := sb.DeleteBucket([]byte(key)); err != nil {
			return err
		}
		if err := os.Rename(s.Dir(id), s.trashDir(id)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %q: %w", key, err)
		}
		trashed = true
		return syncDir(s.SnapshotsDir())
	})
	if err != nil {
		if trashed {
			// The transaction rolled back: put the directory back.
			_ = os.Rename(s.trashDir(id), s.Dir(id))
		}
		return err
	}
	if err := s.removeAll(s.trashDir(id)); err != nil {
		// Open deletes it next time; the snapshot is gone either way.
		return fmt.Errorf("remove %q: delete directory: %w", key, err)
	}
	return nil
}

func (s *Store) trashDir(id uint64) string {
	return filepath.Join(s.SnapshotsDir(), fmt.Sprintf("rm-%d", id))
}
