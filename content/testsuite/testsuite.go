// Package testsuite is the conformance suite of the content.Store contract:
// what package content documents (verify before publish, resumable ingests,
// one writer per ref, error classes, labels) checked against any
// implementation. content/local runs it; a new store (a proxy, a remote
// cache) runs it too, so callers can rely on the interface and not on one
// implementation's habits.
//
//	func TestConformance(t *testing.T) {
//		testsuite.Run(t, func(t *testing.T) content.Store { … a new, empty store … })
//	}
package testsuite

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/content"
)

// Run runs every conformance test against a new, empty store from newStore
// (which registers its own cleanup). Each test owns its store, so they run
// in parallel.
func Run(t *testing.T, newStore func(t *testing.T) content.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s content.Store)
	}{
		{"IngestAndRead", testIngestAndRead},
		{"CommitVerifies", testCommitVerifies},
		{"WriterOfCommittedDigest", testWriterOfCommittedDigest},
		{"OneWriterPerRef", testOneWriterPerRef},
		{"Resume", testResume},
		{"Truncate", testTruncate},
		{"StatusesAndAbort", testStatusesAndAbort},
		{"Labels", testLabels},
		{"WalkAndDelete", testWalkAndDelete},
		{"ConcurrentIngestDoesWorkOnce", testConcurrentIngest},
		{"BadDigests", testBadDigests},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

var ctx = context.Background()

func descOf(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// put ingests b under ref and commits it.
func put(t *testing.T, s content.Store, ref string, b []byte, opts ...content.Opt) ocispec.Descriptor {
	t.Helper()
	d := descOf(b)
	w, err := s.Writer(ctx, ref, d)
	if err != nil {
		t.Fatalf("Writer(%s): %v", ref, err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write(%s): %v", ref, err)
	}
	if err := w.Commit(ctx, d.Size, d.Digest, opts...); err != nil {
		t.Fatalf("Commit(%s): %v", ref, err)
	}
	return d
}

func read(t *testing.T, s content.Store, d ocispec.Descriptor) []byte {
	t.Helper()
	ra, err := s.ReaderAt(ctx, d)
	if err != nil {
		t.Fatalf("ReaderAt(%s): %v", d.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != d.Size {
		t.Errorf("ReaderAt(%s).Size() = %d, want %d", d.Digest, ra.Size(), d.Size)
	}
	b, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		t.Fatalf("read %s: %v", d.Digest, err)
	}
	return b
}

func wantErr(t *testing.T, what string, err error, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Errorf("%s: got %v, want %v", what, err, class)
	}
}

func testIngestAndRead(t *testing.T, s content.Store) {
	data := bytes.Repeat([]byte("berth "), 10000)
	before := time.Now().Add(-time.Second)
	d := put(t, s, "ref-1", data)
	if got := read(t, s, d); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, want the %d written", len(got), len(data))
	}
	ra, err := s.ReaderAt(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 5)
	if n, err := ra.ReadAt(p, 6); n != 5 || string(p) != "berth" {
		t.Errorf("ReadAt(offset 6) = %q, %v", p[:n], err)
	}
	ra.Close()
	info, err := s.Info(ctx, d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != d.Digest || info.Size != d.Size || info.CreatedAt.Before(before) {
		t.Errorf("Info = %+v, want digest %s size %d created after %v", info, d.Digest, d.Size, before)
	}
	if st, _ := s.ListStatuses(ctx); len(st) != 0 {
		t.Errorf("ingests left after a commit: %+v", st)
	}
}

func testCommitVerifies(t *testing.T, s content.Store) {
	data := []byte("the real bytes")
	for _, tc := range []struct {
		name     string
		write    []byte
		size     int64
		expected digest.Digest
	}{
		{"wrong digest", data, int64(len(data)), digest.FromString("other bytes")},
		{"short", data[:4], int64(len(data)), digest.FromBytes(data)},
		{"wrong size", data, int64(len(data)) + 1, ""},
	} {
		ref := "verify-" + tc.name
		w, err := s.Writer(ctx, ref, ocispec.Descriptor{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(tc.write); err != nil {
			t.Fatal(err)
		}
		wantErr(t, tc.name+": Commit", w.Commit(ctx, tc.size, tc.expected), errdefs.ErrFailedPrecondition)
		for _, dg := range []digest.Digest{tc.expected, digest.FromBytes(tc.write)} {
			if dg == "" {
				continue
			}
			if _, err := s.Info(ctx, dg); !errdefs.IsNotFound(err) {
				t.Errorf("%s: Info(%s) after a refused commit: %v, want not found", tc.name, dg, err)
			}
		}
		// The partial data is discarded: the ref starts again from zero.
		w, err = s.Writer(ctx, ref, ocispec.Descriptor{})
		if err != nil {
			t.Fatalf("%s: Writer after a refused commit: %v", tc.name, err)
		}
		if st, _ := w.Status(); st.Offset != 0 {
			t.Errorf("%s: offset after a refused commit %d, want 0", tc.name, st.Offset)
		}
		w.Close()
		s.Abort(ctx, ref)
	}
	// Size 0 and no digest skip the checks.
	w, err := s.Writer(ctx, "unchecked", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(ctx, 0, ""); err != nil {
		t.Errorf("Commit(0, \"\"): %v", err)
	}
	if got := read(t, s, descOf(data)); !bytes.Equal(got, data) {
		t.Errorf("unchecked commit stored %q", got)
	}
}

func testWriterOfCommittedDigest(t *testing.T, s content.Store) {
	d := put(t, s, "first", []byte("once"))
	w, err := s.Writer(ctx, "second", d)
	if err == nil {
		w.Close()
	}
	wantErr(t, "Writer for a committed digest", err, errdefs.ErrAlreadyExists)
	// Committing the same bytes under another ref without telling Writer
	// the digest is reported at Commit, and the blob stays.
	w, err = s.Writer(ctx, "third", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("once"))
	wantErr(t, "Commit of a committed digest", w.Commit(ctx, d.Size, d.Digest), errdefs.ErrAlreadyExists)
	if got := read(t, s, d); string(got) != "once" {
		t.Errorf("blob after a duplicate commit: %q", got)
	}
}

func testOneWriterPerRef(t *testing.T, s content.Store) {
	w, err := s.Writer(ctx, "busy", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Writer(ctx, "busy", ocispec.Descriptor{})
	if err == nil {
		w2.Close()
	}
	wantErr(t, "second Writer of an open ref", err, errdefs.ErrUnavailable)
	other, err := s.Writer(ctx, "other", ocispec.Descriptor{})
	if err != nil {
		t.Errorf("Writer of another ref while one is open: %v", err)
	} else {
		other.Close()
	}
	w.Close()
	w3, err := s.Writer(ctx, "busy", ocispec.Descriptor{})
	if err != nil {
		t.Fatalf("Writer after the first closed: %v", err)
	}
	w3.Close()
}

func testResume(t *testing.T, s content.Store) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	d := descOf(data)
	w, err := s.Writer(ctx, "resume", d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:4321]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, err = s.Writer(ctx, "resume", d)
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Ref != "resume" || st.Offset != 4321 || st.Total != d.Size || st.Expected != d.Digest {
		t.Errorf("Status after resume = %+v, want ref resume, offset 4321, total %d, expected %s", st, d.Size, d.Digest)
	}
	if w.Digest() != digest.FromBytes(data[:4321]) {
		t.Errorf("Digest() after resume = %s, want the digest of the first 4321 bytes", w.Digest())
	}
	if _, err := w.Write(data[4321:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, d.Size, d.Digest); err != nil {
		t.Fatalf("Commit after resume: %v", err)
	}
	if got := read(t, s, d); !bytes.Equal(got, data) {
		t.Error("resumed blob differs from the data")
	}
}

func testTruncate(t *testing.T, s content.Store) {
	w, err := s.Writer(ctx, "trunc", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("garbage that must go"))
	if err := w.Truncate(0); err != nil {
		t.Fatalf("Truncate(0): %v", err)
	}
	if st, _ := w.Status(); st.Offset != 0 {
		t.Errorf("offset after Truncate(0) = %d", st.Offset)
	}
	w.Write([]byte("good"))
	d := descOf([]byte("good"))
	if err := w.Commit(ctx, d.Size, d.Digest); err != nil {
		t.Fatalf("Commit after Truncate: %v", err)
	}
}

func testStatusesAndAbort(t *testing.T, s content.Store) {
	for _, ref := range []string{"a", "b"} {
		w, err := s.Writer(ctx, ref, ocispec.Descriptor{})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(ref + ref))
		w.Close()
	}
	st, err := s.ListStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, x := range st {
		refs = append(refs, x.Ref)
		if x.Offset != 2 {
			t.Errorf("status of %s: offset %d, want 2", x.Ref, x.Offset)
		}
	}
	slices.Sort(refs)
	if !slices.Equal(refs, []string{"a", "b"}) {
		t.Errorf("ListStatuses refs = %v, want [a b]", refs)
	}
	if err := s.Abort(ctx, "a"); err != nil {
		t.Fatalf("Abort(a): %v", err)
	}
	wantErr(t, "Abort of an aborted ref", s.Abort(ctx, "a"), errdefs.ErrNotFound)
	wantErr(t, "Abort of an unknown ref", s.Abort(ctx, "never"), errdefs.ErrNotFound)
	if st, _ := s.ListStatuses(ctx); len(st) != 1 || st[0].Ref != "b" {
		t.Errorf("ListStatuses after Abort(a) = %+v, want b only", st)
	}
	// An aborted ref starts from zero.
	w, err := s.Writer(ctx, "a", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := w.Status(); st.Offset != 0 {
		t.Errorf("offset of a ref after Abort = %d, want 0", st.Offset)
	}
	w.Close()
}

func testLabels(t *testing.T, s content.Store) {
	d := put(t, s, "labelled", []byte("labels"), content.WithLabels(map[string]string{"a": "1", "b": "2"}))
	info, err := s.Info(ctx, d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Labels["a"] != "1" || info.Labels["b"] != "2" {
		t.Errorf("labels at commit: %v", info.Labels)
	}
	// One label by fieldpath: b changes, a stays, c is added.
	if _, err := s.Update(ctx, content.Info{Digest: d.Digest, Labels: map[string]string{"b": "two", "c": "3"}}, "labels.b", "labels.c"); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Info(ctx, d.Digest)
	if len(info.Labels) != 3 || info.Labels["a"] != "1" || info.Labels["b"] != "two" || info.Labels["c"] != "3" {
		t.Errorf("labels after Update(labels.b, labels.c) = %v", info.Labels)
	}
	// A fieldpath whose key is absent from info removes that label.
	if _, err := s.Update(ctx, content.Info{Digest: d.Digest}, "labels.a"); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Info(ctx, d.Digest)
	if _, ok := info.Labels["a"]; ok {
		t.Errorf("label a after Update(labels.a) with no value: %v", info.Labels)
	}
	// No fieldpath replaces them all.
	if _, err := s.Update(ctx, content.Info{Digest: d.Digest, Labels: map[string]string{"only": "this"}}); err != nil {
		t.Fatal(err)
	}
	info, _ = s.Info(ctx, d.Digest)
	if len(info.Labels) != 1 || info.Labels["only"] != "this" {
		t.Errorf("labels after Update() = %v, want only=this", info.Labels)
	}
	_, err = s.Update(ctx, content.Info{Digest: d.Digest, Size: 1}, "size")
	wantErr(t, "Update of field size", err, errdefs.ErrInvalidArgument)
	_, err = s.Update(ctx, content.Info{Digest: digest.FromString("absent")}, "labels")
	wantErr(t, "Update of an absent blob", err, errdefs.ErrNotFound)
}

func testWalkAndDelete(t *testing.T, s content.Store) {
	var want []digest.Digest
	for _, b := range []string{"one", "two", "three"} {
		want = append(want, put(t, s, "walk-"+b, []byte(b)).Digest)
	}
	// An open ingest is not a blob.
	w, err := s.Writer(ctx, "open", ocispec.Descriptor{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("not yet"))
	defer w.Close()
	walk := func() []digest.Digest {
		var got []digest.Digest
		if err := s.Walk(ctx, func(i content.Info) error { got = append(got, i.Digest); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	slices.Sort(want)
	if got := walk(); !slices.Equal(got, want) {
		t.Errorf("Walk = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(ctx, func(content.Info) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Walk with fn returning an error: %v after %d calls, want that error after 1", err, n)
	}
	if err := s.Delete(ctx, want[0]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if got := walk(); !slices.Equal(got, want[1:]) {
		t.Errorf("Walk after Delete = %v, want %v", got, want[1:])
	}
	_, err = s.Info(ctx, want[0])
	wantErr(t, "Info of a deleted blob", err, errdefs.ErrNotFound)
	_, err = s.ReaderAt(ctx, ocispec.Descriptor{Digest: want[0]})
	wantErr(t, "ReaderAt of a deleted blob", err, errdefs.ErrNotFound)
	wantErr(t, "Delete of a deleted blob", s.Delete(ctx, want[0]), errdefs.ErrNotFound)
}

// testConcurrentIngest: many pullers of one blob under one ref, each
// retrying while the ref is busy, end with one blob written once and every
// other caller told it exists.
func testConcurrentIngest(t *testing.T, s content.Store) {
	data := bytes.Repeat([]byte("x"), 1<<16)
	d := descOf(data)
	const n = 8
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(10 * time.Second)
			for {
				w, err := s.Writer(ctx, "pull-"+d.Digest.String(), d)
				if errdefs.IsUnavailable(err) && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					results[i] = err
					return
				}
				if st, _ := w.Status(); st.Offset == 0 {
					w.Write(data)
				}
				results[i] = w.Commit(ctx, d.Size, d.Digest)
				return
			}
		}()
	}
	wg.Wait()
	committed := 0
	for i, err := range results {
		switch {
		case err == nil:
			committed++
		case errdefs.IsAlreadyExists(err):
		default:
			t.Errorf("puller %d: %v, want nil or already exists", i, err)
		}
	}
	if committed != 1 {
		t.Errorf("%d pullers committed, want exactly 1", committed)
	}
	if got := read(t, s, d); !bytes.Equal(got, data) {
		t.Error("blob differs from the data")
	}
}

func testBadDigests(t *testing.T, s content.Store) {
	for _, d := range []digest.Digest{"", "sha256:abc", "sha256:../../etc/passwd", "md5:d41d8cd98f00b204e9800998ecf8427e"} {
		_, err := s.Info(ctx, d)
		wantErr(t, "Info("+string(d)+")", err, errdefs.ErrInvalidArgument)
		_, err = s.ReaderAt(ctx, ocispec.Descriptor{Digest: d})
		wantErr(t, "ReaderAt("+string(d)+")", err, errdefs.ErrInvalidArgument)
		wantErr(t, "Delete("+string(d)+")", s.Delete(ctx, d), errdefs.ErrInvalidArgument)
	}
	w, err := s.Writer(ctx, "", ocispec.Descriptor{})
	if err == nil {
		w.Close()
	}
	wantErr(t, "Writer with an empty ref", err, errdefs.ErrInvalidArgument)
}
