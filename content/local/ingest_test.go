package local

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// A pull cut short leaves an ingest that a collector must be able to see
// (how big, how long unwritten) and remove, but not while it is written.
func TestStore_StaleIngest_ListAndAbort(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	data := make([]byte, 4096)
	desc := descOf(append(data, 1))

	w, err := s.Writer(ctx, "pull-stale", desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := s.Abort(ctx, "pull-stale"); !errdefs.IsUnavailable(err) {
		t.Fatalf("Abort of an open ingest: got %v, want unavailable", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(filepath.Join(s.ingestDir("pull-stale"), "data"), old, old); err != nil {
		t.Fatal(err)
	}

	sts, err := s.ListStatuses(ctx)
	if err != nil || len(sts) != 1 {
		t.Fatalf("ListStatuses = %+v, %v; want one ingest", sts, err)
	}
	st := sts[0]
	if st.Ref != "pull-stale" || st.Offset != int64(len(data)) || st.Total != desc.Size || !st.UpdatedAt.Equal(old) {
		t.Fatalf("status %+v: want ref pull-stale, offset %d of %d, updated %s", st, len(data), desc.Size, old)
	}

	if err := s.Abort(ctx, "pull-stale"); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if sts, err := s.ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Fatalf("ListStatuses after Abort = %+v, %v; want none", sts, err)
	}
	if _, err := os.Stat(s.ingestDir("pull-stale")); !os.IsNotExist(err) {
		t.Fatalf("ingest directory after Abort: %v, want gone", err)
	}
}
