package controller

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T) *observed.DB {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bdb.Close() })
	db, err := observed.New(bdb)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// A reconcile that panics (here: the controller has no node to pull with)
// is recovered, counted as a failure and retried with backoff; the worker
// and berthd go on.
func TestProcess_PanicIsRetried(t *testing.T) {
	store := desired.NewStore()
	store.ReplaceSource("img.yaml", []spec.Object{{
		APIVersion: spec.APIVersion, Kind: spec.KindImage, Metadata: spec.Metadata{Name: "busybox"},
		Spec: spec.ImageSpec{Ref: "127.0.0.1:5000/busybox:1", PullPolicy: spec.PullIfNotPresent},
	}}, nil)
	var logs bytes.Buffer
	c := New(Options{Desired: store, DB: openDB(t), Bus: observed.NewBus(), Log: slog.New(slog.NewTextHandler(&logs, nil)), MaxBackoff: time.Hour})
	key := spec.Key{Namespace: spec.DefaultNamespace, Kind: spec.KindImage, Name: "busybox"}
	if _, ok := store.Get(key); !ok {
		t.Fatalf("%s not in the store: %v", key, store.Sources())
	}
	c.process(context.Background(), key)
	c.process(context.Background(), key)
	if n := c.queue.Failures(key); n != 2 {
		t.Fatalf("failures after two panicking reconciles: %d, want 2 (retried with backoff)", n)
	}
	if !strings.Contains(logs.String(), "reconcile panicked") || !strings.Contains(logs.String(), `object="Image default/busybox"`) {
		t.Errorf("the panic was not logged with its object:\n%s", logs.String())
	}
	c.queue.ShutDown()
}
