// Package content is berth's content-addressable blob store.
//
// Blobs are stored once, by digest, and shared by every namespace. A blob
// becomes visible under its digest only after its size and digest have been
// verified and its data fsynced (write → verify → fsync → rename → fsync dir),
// so a crash or power cut never leaves a blob whose bytes do not hash to its
// name.
//
// Lifecycle of an ingest:
//
//	w, _ := store.Writer(ctx, "pull-sha256:abc…", desc) // resumes a partial ingest of the same ref
//	io.Copy(w, body)                                      // w.Status().Offset says where it resumed
//	w.Commit(ctx, desc.Size, desc.Digest)                 // verify, fsync, rename into place
//
// Two writers for one ref are refused with errdefs.ErrUnavailable while the
// first is open; callers that want "do the work once" wait and retry, after
// which Commit reports errdefs.ErrAlreadyExists (the blob is there).
//
// The package knows nothing of image manifests: garbage collection decides
// what is referenced and calls Delete.
package content

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
	UpdatedAt time.Time
	Labels    map[string]string
}

// Status describes an ingest in progress.
type Status struct {
	Ref       string
	Offset    int64
	Total     int64
	Expected  digest.Digest
	StartedAt time.Time
	UpdatedAt time.Time
}

// ReaderAt reads a committed blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Provider opens committed blobs.
type Provider interface {
	// ReaderAt opens the blob named by desc.Digest; errdefs.ErrNotFound if absent.
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
}

// Writer is an ingest in progress. Write appends; Commit verifies and publishes.
type Writer interface {
	io.WriteCloser
	// Digest is the digest of the bytes written so far.
	Digest() digest.Digest
	// Commit verifies that exactly size bytes hashing to expected were written
	// (size 0 or expected "" skip that check), makes them durable and visible
	// under the digest, and closes the writer. A mismatch is
	// errdefs.ErrFailedPrecondition and the partial data is discarded.
	Commit(ctx context.Context, size int64, expected digest.Digest, opts ...Opt) error
	Status() (Status, error)
	// Truncate discards data after size (0 restarts the ingest).
	Truncate(size int64) error
}

// Ingester starts or resumes ingests.
type Ingester interface {
	// Writer opens the ingest named ref. desc.Size and desc.Digest, when set,
	// are what Commit will be checked against; a ref whose blob already exists
	// returns errdefs.ErrAlreadyExists.
	Writer(ctx context.Context, ref string, desc ocispec.Descriptor) (Writer, error)
}

// IngestManager lists and aborts ingests.
type IngestManager interface {
	ListStatuses(ctx context.Context) ([]Status, error)
	Abort(ctx context.Context, ref string) error
}

// WalkFunc is called for each committed blob.
type WalkFunc func(Info) error

// Manager reads and edits blob metadata.
type Manager interface {
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// Update replaces the labels of a blob (only "labels" and "labels.KEY"
	// fieldpaths are accepted; none means all labels).
	Update(ctx context.Context, info Info, fieldpaths ...string) (Info, error)
	Walk(ctx context.Context, fn WalkFunc) error
	Delete(ctx context.Context, dgst digest.Digest) error
}

// Store is the whole content store.
type Store interface {
	Manager
	Provider
	IngestManager
	Ingester
}

// Opt configures a Commit.
type Opt func(*Info) error

// WithLabels sets labels on the committed blob.
func WithLabels(labels map[string]string) Opt {
	return func(i *Info) error {
		if i.Labels == nil {
			i.Labels = map[string]string{}
		}
		for k, v := range labels {
			i.Labels[k] = v
		}
		return nil
	}
}
