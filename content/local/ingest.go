package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// maxRefLen bounds an ingest ref; it is hashed for the directory name but
// stored verbatim.
const maxRefLen = 1024

func (s *Store) ingestDir(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.root, "ingest", hex.EncodeToString(sum[:]))
}

// Writer starts the ingest ref, or resumes it: the data already there is
// re-hashed and writing continues at its end (Status().Offset). A second
// Writer for a ref that is open, in this process or another, is
// errdefs.ErrUnavailable; a desc.Digest already committed is
// errdefs.ErrAlreadyExists.
func (s *Store) Writer(ctx context.Context, ref string, desc ocispec.Descriptor) (content.Writer, error) {
	if ref == "" || len(ref) > maxRefLen {
		return nil, fmt.Errorf("ingest ref of %d bytes: want 1..%d: %w", len(ref), maxRefLen, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("ingest %s: negative size %d: %w", ref, desc.Size, errdefs.ErrInvalidArgument)
	}
	if desc.Digest != "" {
		p, err := s.blobPath(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("ingest %s: %w", ref, err)
		}
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrAlreadyExists)
		}
	}
	if !s.claim(ref) {
		return nil, fmt.Errorf("ingest %s: another writer is open: %w", ref, errdefs.ErrUnavailable)
	}
	dir := s.ingestDir(ref)
	lock, err := lockIngest(dir)
	if err != nil {
		s.release(ref)
		return nil, fmt.Errorf("ingest %s: %w", ref, err)
	}
	w, err := s.openIngest(dir, ref, desc)
	if err != nil {
		lock.Close()
		s.release(ref)
		return nil, fmt.Errorf("ingest %s: %w", ref, err)
	}
	w.lock = lock
	return w, nil
}

func (s *Store) claim(ref string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[ref] {
		return false
	}
	s.active[ref] = true
	return true
}

func (s *Store) release(ref string) {
	s.mu.Lock()
	delete(s.active, ref)
	s.mu.Unlock()
}

// lockIngest creates dir and takes a non-blocking flock on dir/lock, which
// keeps another process off the same ingest. The lock file is checked to be
// still the one at the path: a committing writer removes the directory, and
// a lock on an unlinked file protects nothing.
func lockIngest(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("locked by another writer: %w", errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	a, err1 := f.Stat()
	b, err2 := os.Stat(p)
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		f.Close()
		return nil, fmt.Errorf("ingest finished while locking: %w", errdefs.ErrUnavailable)
	}
	return f, nil
}

// header is the ingest's small files.
type header struct {
	ref       string
	total     int64
	expected  digest.Digest
	startedAt time.Time
}

func readHeader(dir string) (header, error) {
	var h header
	ref, err := os.ReadFile(filepath.Join(dir, "ref"))
	if err != nil {
		return h, err
	}
	h.ref = string(ref)
	if b, err := os.ReadFile(filepath.Join(dir, "total")); err == nil {
		h.total, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "expected")); err == nil && len(b) > 0 {
		if d, err := content.ParseDigest(strings.TrimSpace(string(b))); err == nil {
			h.expected = d
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "startedat")); err == nil {
		h.startedAt, _ = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	}
	return h, nil
}

// writeHeader writes ref last: its presence marks a complete header.
func writeHeader(dir string, h header) error {
	files := []struct{ name, data string }{
		{"total", strconv.FormatInt(h.total, 10)},
		{"expected", h.expected.String()},
		{"startedat", h.startedAt.Format(time.RFC3339Nano)},
		{"ref", h.ref},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), []byte(f.data)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) openIngest(dir, ref string, desc ocispec.Descriptor) (*writer, error) {
	h, err := readHeader(dir)
	fresh := errors.Is(err, fs.ErrNotExist)
	if err != nil && !fresh {
		return nil, err
	}
	if !fresh && h.ref != ref {
		return nil, fmt.Errorf("ingest directory holds ref %q: %w", h.ref, errdefs.ErrFailedPrecondition)
	}
	// Data written for other content cannot be resumed into this one.
	restart := fresh ||
		(desc.Digest != "" && h.expected != "" && desc.Digest != h.expected) ||
		(desc.Size > 0 && h.total > 0 && desc.Size != h.total)
	if restart {
		h = header{ref: ref, total: desc.Size, expected: desc.Digest, startedAt: time.Now().UTC()}
		if err := os.Remove(filepath.Join(dir, "data")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := writeHeader(dir, h); err != nil {
			return nil, err
		}
	} else if (desc.Digest != "" && h.expected == "") || (desc.Size > 0 && h.total == 0) {
		if desc.Digest != "" {
			h.expected = desc.Digest
		}
		if desc.Size > 0 {
			h.total = desc.Size
		}
		if err := writeHeader(dir, h); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	w := &writer{s: s, ref: ref, dir: dir, data: f, total: h.total, expected: h.expected, startedAt: h.startedAt}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size := fi.Size()
	if h.total > 0 && size > h.total {
		size = 0 // more than the blob can hold: nothing in it can be trusted
	}
	if err := w.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	w.updatedAt = fi.ModTime().UTC()
	return w, nil
}

// ListStatuses lists the ingests on disk, open or not.
func (s *Store) ListStatuses(ctx context.Context) ([]content.Status, error) {
	base := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	var out []content.Status
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(base, e.Name())
		h, err := readHeader(dir)
		if err != nil {
			continue // not started, or finished while listing
		}
		st := content.Status{Ref: h.ref, Total: h.total, Expected: h.expected, StartedAt: h.startedAt}
		if fi, err := os.Stat(filepath.Join(dir, "data")); err == nil {
			st.Offset, st.UpdatedAt = fi.Size(), fi.ModTime().UTC()
		}
		out = append(out, st)
	}
	return out, nil
}

// Abort removes the ingest ref and its data. An open ingest is
// errdefs.ErrUnavailable; an unknown one errdefs.ErrNotFound.
func (s *Store) Abort(ctx context.Context, ref string) error {
	dir := s.ingestDir(ref)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ingest %s: %w", ref, errdefs.ErrNotFound)
	}
	if !s.claim(ref) {
		return fmt.Errorf("ingest %s: a writer is open: %w", ref, errdefs.ErrUnavailable)
	}
	defer s.release(ref)
	lock, err := lockIngest(dir)
	if err != nil {
		return fmt.Errorf("ingest %s: %w", ref, err)
	}
	defer lock.Close()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("ingest %s: abort: %w", ref, err)
	}
	return nil
}
