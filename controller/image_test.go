package controller

import (
	"context"
	"log/slog"
	"testing"

	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A first pull's progress is in the Image's status while it runs, paced,
// with a retry's reason at once.
func TestPullProgressInStatus(t *testing.T) {
	ctx := context.Background()
	store := desired.NewStore()
	obj := spec.Object{APIVersion: spec.APIVersion, Kind: spec.KindImage, Metadata: spec.Metadata{Name: "big", Namespace: "default"},
		Spec: spec.ImageSpec{Ref: "127.0.0.1:5000/big:1", PullPolicy: spec.PullIfNotPresent}}
	store.ReplaceSource("img.yaml", []spec.Object{obj}, nil)
	key := spec.Key{Namespace: "default", Kind: spec.KindImage, Name: "big"}
	e, ok := store.Get(key)
	if !ok {
		t.Fatal("not in the store")
	}
	db := openDB(t)
	c := New(Options{Desired: store, DB: db, Bus: observed.NewBus(), Log: slog.New(slog.DiscardHandler)})
	progress := c.pullProgress(ctx, e, "127.0.0.1:5000/big:1", "fetching 127.0.0.1:5000/big:1")
	layer := ocispec.Descriptor{Digest: digest.FromString("layer"), Size: 1000}
	progress(node.Progress{Desc: layer, Status: "downloading", Offset: 0})
	progress(node.Progress{Desc: layer, Status: "downloading", Offset: 400, Fetched: 400}) // paced: not written
	st, err := db.GetStatus(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	p := st.Status.ImageStatus.Progress
	if p == nil || len(p.Layers) != 1 || p.Layers[0].Offset != 0 || p.Layers[0].Total != 1000 {
		t.Fatalf("first report: %+v", st.Status.ImageStatus)
	}
	if c, _ := st.Status.Condition(spec.ConditionProgressing); c.Reason != "Pulling" {
		t.Fatalf("Progressing %+v, want reason Pulling", c)
	}
	progress(node.Progress{Desc: layer, Status: "retrying", Message: "503 to GET /v2/big/blobs; retry 1 in 2s", Fetched: 400})
	st, _ = db.GetStatus(ctx, key)
	if p := st.Status.ImageStatus.Progress; p.Waiting != "503 to GET /v2/big/blobs; retry 1 in 2s" || p.Fetched != 400 || p.Layers[0].Offset != 400 {
		t.Fatalf("a retry is written at once with the figures so far: %+v", p)
	}
}
