package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

var _ content.Writer = (*writer)(nil)

// writer is one open ingest. It is not safe for concurrent use.
type writer struct {
	s         *Store
	ref, dir  string
	lock      *os.File
	data      *os.File
	h         digest.Digester
	offset    int64
	total     int64
	expected  digest.Digest
	startedAt time.Time
	updatedAt time.Time
	closed    bool
}

// Write appends p. Bytes beyond the size the ingest was opened with are
// refused before they reach the disk: a server cannot make us store more
// than the descriptor promised.
func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("ingest %s: write after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	if w.total > 0 && w.offset+int64(len(p)) > w.total {
		return 0, fmt.Errorf("ingest %s: write of %d bytes at offset %d exceeds the expected size %d: %w",
			w.ref, len(p), w.offset, w.total, errdefs.ErrFailedPrecondition)
	}
	n, err := w.data.Write(p)
	w.h.Hash().Write(p[:n])
	w.offset += int64(n)
	w.updatedAt = time.Now().UTC()
	if err != nil {
		return n, fmt.Errorf("ingest %s: %w", w.ref, err)
	}
	return n, nil
}

func (w *writer) Digest() digest.Digest { return w.h.Digest() }

func (w *writer) Status() (content.Status, error) {
	return content.Status{
		Ref: w.ref, Offset: w.offset, Total: w.total, Expected: w.expected,
		StartedAt: w.startedAt, UpdatedAt: w.updatedAt,
	}, nil
}

// Truncate keeps the first size bytes and re-hashes them.
func (w *writer) Truncate(size int64) error {
	if w.closed {
		return fmt.Errorf("ingest %s: truncate after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	fi, err := w.data.Stat()
	if err != nil {
		return err
	}
	if size < 0 || size > fi.Size() {
		return fmt.Errorf("ingest %s: truncate to %d of %d bytes: %w", w.ref, size, fi.Size(), errdefs.ErrInvalidArgument)
	}
	if err := w.data.Truncate(size); err != nil {
		return err
	}
	w.h = digest.SHA256.Digester()
	if _, err := io.Copy(w.h.Hash(), io.NewSectionReader(w.data, 0, size)); err != nil {
		return fmt.Errorf("ingest %s: re-hash: %w", w.ref, err)
	}
	if _, err := w.data.Seek(size, io.SeekStart); err != nil {
		return err
	}
	w.offset = size
	return nil
}

// Close ends this Writer and keeps the data, so a later Writer for the same
// ref resumes. The data is not fsynced: Commit re-verifies whatever is there.
func (w *writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.data.Close()
	w.unlock()
	return err
}

func (w *writer) unlock() {
	w.lock.Close()
	w.s.release(w.ref)
}

// Commit verifies size and digest against the arguments and the descriptor
// the ingest was opened with, fsyncs the data, renames it into blobs/,
// fsyncs that directory and only then records metadata.
func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if w.closed {
		return fmt.Errorf("ingest %s: commit after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	var info content.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return fmt.Errorf("ingest %s: %w", w.ref, err)
		}
	}
	if err := validateLabels(info.Labels); err != nil {
		return fmt.Errorf("ingest %s: %w", w.ref, err)
	}
	dgst := w.h.Digest()
	if err := w.check(size, expected, dgst); err != nil {
		w.discard()
		return err
	}
	w.closed = true
	defer w.unlock()
	if err := w.data.Sync(); err != nil {
		w.data.Close()
		return fmt.Errorf("ingest %s: fsync: %w", w.ref, err)
	}
	if err := w.data.Close(); err != nil {
		return fmt.Errorf("ingest %s: %w", w.ref, err)
	}
	target, _ := w.s.blobPath(dgst) // dgst is our own sha256
	if _, err := os.Stat(target); err == nil {
		os.RemoveAll(w.dir)
		return fmt.Errorf("blob %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	src := filepath.Join(w.dir, "data")
	if err := os.Chmod(src, 0o444); err != nil {
		return fmt.Errorf("ingest %s: %w", w.ref, err)
	}
	if err := os.Rename(src, target); err != nil {
		return fmt.Errorf("ingest %s: publish %s: %w", w.ref, dgst, err)
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return fmt.Errorf("ingest %s: publish %s: %w", w.ref, dgst, err)
	}
	now := time.Now().UTC()
	info.Digest, info.Size, info.CreatedAt, info.UpdatedAt = dgst, w.offset, now, now
	if err := w.s.db.Update(func(tx *bolt.Tx) error { return writeInfo(tx, info) }); err != nil {
		// The blob is published and verified; only labels are lost.
		return fmt.Errorf("blob %s: committed, but recording metadata failed: %w", dgst, err)
	}
	if err := os.RemoveAll(w.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ingest %s: cleanup: %w", w.ref, err)
	}
	return nil
}

// check compares what was written with every expectation given.
func (w *writer) check(size int64, expected, got digest.Digest) error {
	for _, want := range []int64{size, w.total} {
		if want > 0 && w.offset != want {
			return fmt.Errorf("ingest %s: wrote %d bytes, expected %d: %w", w.ref, w.offset, want, errdefs.ErrFailedPrecondition)
		}
	}
	for _, want := range []digest.Digest{expected, w.expected} {
		if want != "" && want != got {
			return fmt.Errorf("ingest %s: content hashes to %s, expected %s: %w", w.ref, got, want, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

// discard drops a failed ingest entirely: its bytes are known to be wrong.
func (w *writer) discard() {
	w.closed = true
	w.data.Close()
	os.RemoveAll(w.dir)
	w.unlock()
}
