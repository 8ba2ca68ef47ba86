package node

import (
	"testing"

	"github.com/containerd/errdefs"
)

func TestSnapshotKeyAndRef(t *testing.T) {
	chain := "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	tests := []struct {
		key              string
		wantKey, wantRef string // "" means an InvalidArgument error
	}{
		{"web", "edge/web", "edge/web"},
		{"edge/web", "edge/web", "edge/web"},
		{"other/web", "", ""},
		{"", "", ""},
		{chain, "", chain},                // a layer: readable and a parent, never written
		{"sha256:../../x", "", ""},        // not a digest
		{"sha256:" + "AB12", "", ""},      // not the strict grammar
		{"sha256:evil-but-short", "", ""}, // likewise
	}
	for _, tt := range tests {
		gotKey, err := SnapshotKey("edge", tt.key)
		if tt.wantKey == "" && !errdefs.IsInvalidArgument(err) || tt.wantKey != "" && gotKey != tt.wantKey {
			t.Errorf("SnapshotKey(%q) = %q, %v; want %q", tt.key, gotKey, err, tt.wantKey)
		}
		gotRef, err := SnapshotRef("edge", tt.key)
		if tt.wantRef == "" && !errdefs.IsInvalidArgument(err) || tt.wantRef != "" && gotRef != tt.wantRef {
			t.Errorf("SnapshotRef(%q) = %q, %v; want %q", tt.key, gotRef, err, tt.wantRef)
		}
	}
}
