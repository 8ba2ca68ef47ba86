package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/content"
	"berth.dev/berth/content/local"
	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// storeNode is a node over a content store and metadata only: enough for
// collections of content.
func storeNode(t *testing.T, opts Options) (*Node, *local.Store) {
	t.Helper()
	root := t.TempDir()
	bdb, err := bolt.Open(filepath.Join(root, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := observed.New(bdb)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); bdb.Close() })
	opts.Content, opts.DB, opts.Events, opts.Log = cs, db, &recorder{}, slog.New(slog.DiscardHandler)
	return New(opts), cs
}

// partialIngest writes half of a blob under ref, as a pull cut short does,
// and dates its last write age ago.
func partialIngest(t *testing.T, cs *local.Store, ref string, age time.Duration) content.Writer {
	t.Helper()
	ctx := context.Background()
	data := []byte(strings.Repeat(ref, 100))
	w, err := cs.Writer(ctx, ref, ocispec.Descriptor{Digest: digest.FromBytes(append(data, data...)), Size: int64(2 * len(data))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	// The data file's mtime is the ingest's last write; its directory is
	// named by a hash of ref, found here by the ref file beside it.
	old := time.Now().Add(-age)
	matches, _ := filepath.Glob(filepath.Join(cs.Root(), "ingest", "*", "ref"))
	for _, m := range matches {
		if b, err := os.ReadFile(m); err == nil && string(b) == ref {
			if err := os.Chtimes(filepath.Join(filepath.Dir(m), "data"), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func ingestRefs(t *testing.T, cs *local.Store) []string {
	t.Helper()
	sts, err := cs.ListStatuses(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, st := range sts {
		refs = append(refs, st.Ref)
	}
	slices.Sort(refs)
	return refs
}

func TestGC_StaleIngests(t *testing.T) {
	ctx := context.Background()
	n, cs := storeNode(t, Options{StaleIngestAge: time.Hour})
	partialIngest(t, cs, "old", 2*time.Hour).Close()
	partialIngest(t, cs, "fresh", time.Minute).Close()
	partialIngest(t, cs, "leased", 2*time.Hour).Close()
	open := partialIngest(t, cs, "open", 2*time.Hour)
	defer open.Close()
	l, err := n.CreateLease(ctx, spec.DefaultNamespace, LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.AddLeaseResources(ctx, spec.DefaultNamespace, l.ID, observed.LeaseResource{Type: observed.ResourceIngests, ID: "leased"}); err != nil {
		t.Fatal(err)
	}

	res, err := n.GC(ctx, true)
	slices.Sort(res.Ingests)
	if err != nil || !slices.Equal(res.Ingests, []string{"old", "open"}) {
		t.Fatalf("GC dry run = %+v, %v; want old and open (only removal finds open in use)", res, err)
	}
	if got := ingestRefs(t, cs); !slices.Equal(got, []string{"fresh", "leased", "old", "open"}) {
		t.Fatalf("ingests after dry run: %v, want all four", got)
	}

	res, err = n.GC(ctx, false)
	if err != nil || !slices.Equal(res.Ingests, []string{"old"}) || res.Bytes != 300 {
		t.Fatalf("GC = %+v, %v; want ingest old removed, 300 bytes", res, err)
	}
	if got := ingestRefs(t, cs); !slices.Equal(got, []string{"fresh", "leased", "open"}) {
		t.Fatalf("ingests after GC: %v, want fresh, leased and open kept", got)
	}

	// A prune takes the fresh one too; the open and leased stay. An open
	// one is known to be in use only when removal is refused.
	if b, err := n.StaleIngestBytes(ctx); err != nil || b != 900 {
		t.Fatalf("StaleIngestBytes = %d, %v; want 900 (fresh and open)", b, err)
	}
	if res, err = n.Prune(ctx, false); err != nil || !slices.Equal(res.Ingests, []string{"fresh"}) {
		t.Fatalf("Prune = %+v, %v; want ingest fresh removed", res, err)
	}
	if got := ingestRefs(t, cs); !slices.Equal(got, []string{"leased", "open"}) {
		t.Fatalf("ingests after Prune: %v, want leased and open kept", got)
	}
}

// A node left running collects an ingest once it goes stale, with no
// prune asked for.
func TestRecoverLeases_CollectsStaleIngests(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n, cs := storeNode(t, Options{StaleIngestAge: time.Hour})
	partialIngest(t, cs, "old", 2*time.Hour).Close()
	partialIngest(t, cs, "fresh", time.Minute).Close()
	if err := n.RecoverLeases(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); n.background.Wait() })
	waitFor(t, 10*time.Second, func() (bool, string) {
		got := ingestRefs(t, cs)
		return slices.Equal(got, []string{"fresh"}), fmt.Sprintf("ingests %v, want only fresh", got)
	})
}

// A pull that ran out of space says what a prune would give back.
func TestExplainNoSpace(t *testing.T) {
	ctx := context.Background()
	n, cs := storeNode(t, Options{})
	partialIngest(t, cs, "left", time.Hour).Close()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"enospc", fmt.Errorf("write blob: %w", syscall.ENOSPC), "stale ingests hold 400 B: berth content prune frees them"},
		{"reserve", fmt.Errorf("free space under reserve: %w", errdefs.ErrResourceExhausted), "stale ingests hold 400 B"},
		{"other", errors.New("connection refused"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := n.explainNoSpace(ctx, tc.err)
			if !errors.Is(err, tc.err) {
				t.Fatalf("%v does not wrap %v", err, tc.err)
			}
			if tc.want == "" && err.Error() != tc.err.Error() || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// fullStore is a content store on a full disk: every ingest write fails
// with ENOSPC.
type fullStore struct{ *local.Store }

func (s fullStore) Writer(ctx context.Context, ref string, desc ocispec.Descriptor) (content.Writer, error) {
	w, err := s.Store.Writer(ctx, ref, desc)
	if err != nil {
		return nil, err
	}
	return fullWriter{w}, nil
}

type fullWriter struct{ content.Writer }

func (fullWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("write: %w", syscall.ENOSPC) }

// An import that runs out of space says what stale ingests hold, once,
// as a pull does.
func TestImport_NoSpaceSaysWhatIngestsHold(t *testing.T) {
	images := testutil.TestImages(t, "busybox")
	n, cs := storeNode(t, Options{})
	partialIngest(t, cs, "left", time.Hour).Close()
	n.opts.Content = fullStore{cs}
	_, err := n.Import(context.Background(), "default", filepath.Join(images, "busybox"), ImportOptions{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("import onto a full store: %v, want ENOSPC", err)
	}
	const note = "stale ingests hold 400 B: berth content prune frees them"
	if got := strings.Count(err.Error(), note); got != 1 {
		t.Errorf("import error %q says %q %d times, want once", err, note, got)
	}
	if again := n.explainNoSpace(context.Background(), err); again.Error() != err.Error() {
		t.Errorf("explained twice: %q", again)
	}
}
