package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"berth.dev/berth/content"
	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, root
}

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.SHA256.FromBytes(b), Size: int64(len(b))}
}

func ingest(t testing.TB, s *Store, ref string, b []byte) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	desc := descOf(b)
	w, err := s.Writer(ctx, ref, desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	return desc
}

func readAll(t testing.TB, s *Store, desc ocispec.Descriptor) []byte {
	t.Helper()
	ra, err := s.ReaderAt(context.Background(), desc)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	b, err := io.ReadAll(content.NewReader(ra))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStore_Commit_Errors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	data := []byte("hello, berth")
	good := descOf(data)
	tests := []struct {
		name    string
		desc    ocispec.Descriptor // Writer's descriptor
		write   []byte
		size    int64
		dgst    digest.Digest
		wantErr error // from Write or Commit
	}{
		{"ok", good, data, good.Size, good.Digest, nil},
		{"ok without expectations", ocispec.Descriptor{}, data, 0, "", nil},
		{"wrong digest", good, data, good.Size, digest.SHA256.FromString("other"), errdefs.ErrFailedPrecondition},
		{"short", good, data[:3], good.Size, good.Digest, errdefs.ErrFailedPrecondition},
		{"wrong size at commit", ocispec.Descriptor{}, data, good.Size + 1, "", errdefs.ErrFailedPrecondition},
		{"over the descriptor size", ocispec.Descriptor{Size: 4}, data, 0, "", errdefs.ErrFailedPrecondition},
		{"digest of the writer's descriptor", ocispec.Descriptor{Digest: digest.SHA256.FromString("x")}, data, 0, "", errdefs.ErrFailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, root := newStore(t)
			w, err := s.Writer(ctx, "ref", tc.desc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Write(tc.write)
			if err == nil {
				err = w.Commit(ctx, tc.size, tc.dgst)
			} else {
				w.Close()
				s.Abort(ctx, "ref")
			}
			if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			blobs, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
			ingests, _ := os.ReadDir(filepath.Join(root, "ingest"))
			wantBlobs := 0
			if tc.wantErr == nil {
				wantBlobs = 1
			}
			if len(blobs) != wantBlobs || len(ingests) != 0 {
				t.Errorf("got %d blobs and %d ingests, want %d and 0", len(blobs), len(ingests), wantBlobs)
			}
		})
	}
}

func TestStore_Writer_Errors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	existing := ingest(t, s, "existing", []byte("there"))
	open, err := s.Writer(ctx, "busy", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	tests := []struct {
		name    string
		ref     string
		desc    ocispec.Descriptor
		wantErr error
	}{
		{"committed digest", "other", existing, errdefs.ErrAlreadyExists},
		{"open ref", "busy", ocispec.Descriptor{}, errdefs.ErrUnavailable},
		{"empty ref", "", ocispec.Descriptor{}, errdefs.ErrInvalidArgument},
		{"upper-case digest", "x", ocispec.Descriptor{Digest: digest.Digest("sha256:AB" + existing.Digest.Encoded()[2:])}, errdefs.ErrInvalidArgument},
		{"path in digest", "x", ocispec.Descriptor{Digest: "sha256:../../../etc/passwd"}, errdefs.ErrInvalidArgument},
		{"sha512", "x", ocispec.Descriptor{Digest: digest.Digest("sha512:" + strings.Repeat("a", 128))}, errdefs.ErrInvalidArgument},
		{"negative size", "x", ocispec.Descriptor{Size: -1}, errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := s.Writer(ctx, tc.ref, tc.desc)
			if err == nil {
				w.Close()
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("bad digests elsewhere", func(t *testing.T) {
		for _, d := range []digest.Digest{"sha256:abc", "sha256:../x", ""} {
			if _, err := s.Info(ctx, d); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Info(%q): got %v, want invalid argument", d, err)
			}
			if _, err := s.ReaderAt(ctx, ocispec.Descriptor{Digest: d}); !errdefs.IsInvalidArgument(err) {
				t.Errorf("ReaderAt(%q): got %v, want invalid argument", d, err)
			}
			if err := s.Delete(ctx, d); !errdefs.IsInvalidArgument(err) {
				t.Errorf("Delete(%q): got %v, want invalid argument", d, err)
			}
		}
	})
	t.Run("absent", func(t *testing.T) {
		d := digest.SHA256.FromString("absent")
		if _, err := s.Info(ctx, d); !errdefs.IsNotFound(err) {
			t.Errorf("Info: got %v, want not found", err)
		}
		if err := s.Delete(ctx, d); !errdefs.IsNotFound(err) {
			t.Errorf("Delete: got %v, want not found", err)
		}
		if err := s.Abort(ctx, "nope"); !errdefs.IsNotFound(err) {
			t.Errorf("Abort: got %v, want not found", err)
		}
	})
}

func TestStore_Resume_AfterCrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	data := make([]byte, 1<<20)
	rand.Read(data)
	desc := descOf(data)

	s, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer(ctx, "pull", desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:300000]); err != nil {
		t.Fatal(err)
	}
	// A crash: the writer and the store go away without a commit, leaving
	// a temp file behind for recover to remove.
	w.Close()
	s.Close()
	stray := filepath.Join(root, "blobs", "sha256", tmpPrefix+"x")
	os.WriteFile(stray, []byte("junk"), 0o600)

	s, err = NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("stray temp file survived reopen: %v", err)
	}
	sts, err := s.ListStatuses(ctx)
	if err != nil || len(sts) != 1 || sts[0].Ref != "pull" || sts[0].Offset != 300000 || sts[0].Expected != desc.Digest {
		t.Fatalf("ListStatuses = %+v, %v; want one ingest of ref pull at 300000", sts, err)
	}
	w, err = s.Writer(ctx, "pull", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := w.Status()
	if st.Offset != 300000 || st.Total != desc.Size {
		t.Fatalf("resumed at %d of %d, want 300000 of %d", st.Offset, st.Total, desc.Size)
	}
	if _, err := w.Write(data[st.Offset:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, desc); !bytes.Equal(got, data) {
		t.Error("resumed blob differs from the data")
	}
	if sts, _ := s.ListStatuses(ctx); len(sts) != 0 {
		t.Errorf("ingests left after commit: %+v", sts)
	}
}

func TestStore_Writer_Concurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	data := []byte("one download")
	desc := descOf(data)
	const n = 8
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Writer(ctx, "same", desc)
			if err != nil {
				results[i] = err
				return
			}
			w.Write(data)
			results[i] = w.Commit(ctx, desc.Size, desc.Digest)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case errdefs.IsUnavailable(err), errdefs.IsAlreadyExists(err):
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d writers committed, want exactly 1", ok)
	}
	if got := readAll(t, s, desc); !bytes.Equal(got, data) {
		t.Errorf("blob = %q", got)
	}
}

func TestStore_Lock_AcrossProcesses(t *testing.T) {
	t.Parallel()
	// A second process cannot open the store (bbolt's lock), so the ingest
	// lock file is what guards a ref against another opener of the
	// directory; take it directly as another process would.
	ctx := context.Background()
	s, _ := newStore(t)
	other, err := lockIngest(s.ingestDir("ref"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(ctx, "ref", ocispec.Descriptor{}); !errdefs.IsUnavailable(err) {
		t.Errorf("Writer with the lock file held: got %v, want unavailable", err)
	}
	other.Close()
	w, err := s.Writer(ctx, "ref", ocispec.Descriptor{})
	if err != nil {
		t.Fatalf("Writer after the lock was released: %v", err)
	}
	w.Close()
}

func TestStore_Metadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newStore(t)
	a := ingest(t, s, "a", []byte("a"))
	b := ingest(t, s, "b", []byte("b"))
	info, err := s.Update(ctx, content.Info{Digest: a.Digest, Labels: map[string]string{"k": "v", "x": "y"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err = s.Update(ctx, content.Info{Digest: a.Digest, Labels: map[string]string{"k": "v2"}}, "labels.k", "labels.x")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"k": "v2"}, info.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if _, err := s.Update(ctx, content.Info{Digest: a.Digest}, "size"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Update(size): got %v, want invalid argument", err)
	}

	// Metadata is a cache: drop it, reopen, the blobs are still there.
	s.Close()
	os.Remove(filepath.Join(root, "metadata.db"))
	s2, err := NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var got []digest.Digest
	if err := s2.Walk(ctx, func(i content.Info) error {
		got = append(got, i.Digest)
		if i.Size != 1 || i.CreatedAt.IsZero() {
			t.Errorf("recreated info %+v", i)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []digest.Digest{a.Digest, b.Digest}
	if want[0] > want[1] {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("walk (-want +got):\n%s", diff)
	}
	if err := s2.Delete(ctx, a.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Info(ctx, a.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("Info after Delete: got %v, want not found", err)
	}
}

func TestStore_Verify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newStore(t)
	good := ingest(t, s, "good", []byte("good"))
	bad := ingest(t, s, "bad", []byte("bad"))
	p := filepath.Join(root, "blobs", "sha256", bad.Digest.Encoded())
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("rot"), 0o644) // a torn write after a power cut
	if err := s.Verify(ctx, good.Digest); err != nil {
		t.Errorf("Verify(good) = %v", err)
	}
	if err := s.Verify(ctx, bad.Digest); !errdefs.IsDataLoss(err) {
		t.Errorf("Verify(bad) = %v, want data loss", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Error("corrupt blob was not removed")
	}
}

func BenchmarkStore_Ingest(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	const chunks = 16
	b.SetBytes(chunks << 20)
	for i := 0; b.Loop(); i++ {
		chunk[0] = byte(i) // a new digest each time
		w, err := s.Writer(ctx, "bench", ocispec.Descriptor{})
		if err != nil {
			b.Fatal(err)
		}
		for range chunks {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(ctx, 0, ""); err != nil && !errdefs.IsAlreadyExists(err) {
			b.Fatal(err)
		}
	}
}
