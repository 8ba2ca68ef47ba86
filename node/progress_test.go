package node

import (
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPullTracker(t *testing.T) {
	a := ocispec.Descriptor{Digest: digest.FromString("a"), Size: 300, MediaType: ocispec.MediaTypeImageLayerGzip}
	b := ocispec.Descriptor{Digest: digest.FromString("b"), Size: 50, MediaType: ocispec.MediaTypeImageConfig}
	tr := NewPullTracker()
	for _, p := range []Progress{
		{Desc: a, Status: "downloading", Offset: 0},
		{Desc: b, Status: "done", Offset: 50}, // already in the store
		{Desc: a, Status: "downloading", Offset: 100, Fetched: 100},
		{Desc: a, Status: "retrying", Message: "429 Too Many Requests to GET /v2/x/blobs; retry 1 in 1s", Fetched: 100},
	} {
		tr.Observe(p)
	}
	s := tr.Snapshot()
	if len(s.Layers) != 2 || s.Layers[0].Digest != a.Digest.String() || s.Layers[1].Status != "done" {
		t.Fatalf("layers %+v, want a then b (done)", s.Layers)
	}
	if s.Layers[0].Status != "retrying" || s.Waiting == "" {
		t.Fatalf("a retrying pull says why it waits: %+v waiting %q", s.Layers[0], s.Waiting)
	}
	// The last chunk before done counts: the summary used to stop at the
	// last "downloading" report (808 KiB shown for 1,012 KiB).
	tr.Observe(Progress{Desc: a, Status: "done", Offset: 300, Fetched: 300})
	s = tr.Snapshot()
	if s.Fetched != 300 || s.Layers[0].Offset != 300 || s.Layers[0].Status != "done" || s.Waiting != "" {
		t.Fatalf("after done: %+v", s)
	}
	if s.Layers[0].Total != 300 || s.Layers[0].MediaType != a.MediaType {
		t.Fatalf("layer a: %+v", s.Layers[0])
	}
}
