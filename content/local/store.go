package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

var _ content.Store = (*Store)(nil)

// Store is a content store rooted in one directory. It is safe for
// concurrent use; one process opens a root at a time (bbolt's file lock).
type Store struct {
	root string
	db   *bolt.DB

	mu     sync.Mutex
	active map[string]bool // refs with an open Writer in this process
}

// NewStore opens (creating if needed) the store under root, cleans what an
// earlier crash left behind and reconciles metadata with the blob files.
func NewStore(root string) (*Store, error) {
	for _, d := range []string{root, filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "ingest")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content store %s: %w", root, err)
		}
	}
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			err = fmt.Errorf("metadata.db is locked by another process: %w", errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("content store %s: %w", root, err)
	}
	s := &Store{root: root, db: db, active: map[string]bool{}}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("content store %s: recover: %w", root, err)
	}
	return s, nil
}

// Close closes the metadata database. Open Writers must be closed first.
func (s *Store) Close() error { return s.db.Close() }

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) blobPath(dgst digest.Digest) (string, error) {
	if _, err := content.ParseDigest(dgst.String()); err != nil {
		return "", err
	}
	return filepath.Join(s.root, "blobs", "sha256", dgst.Encoded()), nil
}

// Info returns the metadata of a committed blob, recreating a missing record.
func (s *Store) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return content.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return content.Info{}, fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
		}
		return content.Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	return s.infoFor(dgst, fi)
}

// infoFor reads the record of a blob whose file is fi, writing a fresh
// record when there is none or it disagrees with the file.
func (s *Store) infoFor(dgst digest.Digest, fi fs.FileInfo) (content.Info, error) {
	var info content.Info
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		blobs := blobsBucket(tx)
		if blobs == nil {
			return nil
		}
		b := blobs.Bucket([]byte(dgst))
		if b == nil {
			return nil
		}
		var err error
		info, err = readInfo(b, dgst)
		found = err == nil
		return nil // an unreadable record is rewritten below
	})
	if err != nil {
		return content.Info{}, err
	}
	if found && info.Size == fi.Size() {
		return info, nil
	}
	info = content.Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime().UTC(), UpdatedAt: fi.ModTime().UTC(), Labels: info.Labels}
	if err := s.db.Update(func(tx *bolt.Tx) error { return writeInfo(tx, info) }); err != nil {
		return content.Info{}, fmt.Errorf("blob %s: recreate metadata: %w", dgst, err)
	}
	return info, nil
}

// Update replaces labels: fieldpaths "labels" (all) or "labels.KEY" (one);
// none means all labels.
func (s *Store) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	if err := validateLabels(info.Labels); err != nil {
		return content.Info{}, fmt.Errorf("blob %s: %w", info.Digest, err)
	}
	cur, err := s.Info(ctx, info.Digest)
	if err != nil {
		return content.Info{}, err
	}
	labels := map[string]string{}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	for k, v := range cur.Labels {
		labels[k] = v
	}
	for _, fp := range fieldpaths {
		switch {
		case fp == "labels":
			labels = map[string]string{}
			for k, v := range info.Labels {
				labels[k] = v
			}
		case strings.HasPrefix(fp, "labels."):
			key := strings.TrimPrefix(fp, "labels.")
			if v, ok := info.Labels[key]; ok {
				labels[key] = v
			} else {
				delete(labels, key)
			}
		default:
			return content.Info{}, fmt.Errorf("blob %s: cannot update field %q: %w", info.Digest, fp, errdefs.ErrInvalidArgument)
		}
	}
	cur.Labels = labels
	cur.UpdatedAt = time.Now().UTC()
	if err := s.db.Update(func(tx *bolt.Tx) error { return writeInfo(tx, cur) }); err != nil {
		return content.Info{}, fmt.Errorf("blob %s: update: %w", info.Digest, err)
	}
	return cur, nil
}

// Walk calls fn for every committed blob, in digest order. The blob files
// are listed first, so fn may delete.
func (s *Store) Walk(ctx context.Context, fn content.WalkFunc) error {
	entries, err := os.ReadDir(filepath.Join(s.root, "blobs", "sha256"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		dgst, err := content.ParseDigest("sha256:" + e.Name())
		if err != nil || !e.Type().IsRegular() {
			continue // temp files and strays; recover removes them
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing
		}
		if err != nil {
			return err
		}
		info, err := s.infoFor(dgst, fi)
		if err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes a committed blob: the file first (the truth), then its
// record. A crash in between leaves a record that the next open drops.
func (s *Store) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	fileErr := os.Remove(p)
	if fileErr != nil && !errors.Is(fileErr, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: delete: %w", dgst, fileErr)
	}
	if fileErr == nil {
		if err := syncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("blob %s: delete: %w", dgst, err)
		}
	}
	hadRecord := false
	if err := s.db.Update(func(tx *bolt.Tx) error {
		blobs := blobsBucket(tx)
		if blobs == nil || blobs.Bucket([]byte(dgst)) == nil {
			return nil
		}
		hadRecord = true
		return blobs.DeleteBucket([]byte(dgst))
	}); err != nil {
		return fmt.Errorf("blob %s: delete metadata: %w", dgst, err)
	}
	if fileErr != nil && !hadRecord {
		return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
	}
	return nil
}

// ReaderAt opens a committed blob; its size is the file's.
func (s *Store) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	p, err := s.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return &readerAt{File: f, size: fi.Size()}, nil
}

type readerAt struct {
	*os.File
	size int64
}

func (r *readerAt) Size() int64 { return r.size }

// Verify re-hashes a committed blob. One whose bytes do not hash to its name
// (a torn write before a power cut, bit rot) is deleted and reported as
// errdefs.ErrDataLoss, so the next pull fetches it again.
func (s *Store) Verify(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
		}
		return fmt.Errorf("blob %s: %w", dgst, err)
	}
	h := digest.SHA256.Digester()
	_, err = io.Copy(h.Hash(), &ctxReader{ctx: ctx, r: f})
	f.Close()
	if err != nil {
		return fmt.Errorf("blob %s: verify: %w", dgst, err)
	}
	if got := h.Digest(); got != dgst {
		if err := s.Delete(ctx, dgst); err != nil {
			return fmt.Errorf("blob %s: hashes to %s, and removing it failed: %w", dgst, got, err)
		}
		return fmt.Errorf("blob %s: hashes to %s, removed: %w", dgst, got, errdefs.ErrDataLoss)
	}
	return nil
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
