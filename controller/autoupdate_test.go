package controller

import (
	"testing"

	"berth.dev/berth/spec"
)

func TestContainerImage(t *testing.T) {
	t.Parallel()
	const name = "127.0.0.1:5000/library/app:latest"
	prev, next := "sha256:aaaa", "sha256:bbbb"
	moving := &spec.ImageStatus{Digest: next, Update: &spec.ImageUpdateStatus{Previous: prev, Target: next, Moved: []string{"one"}}}
	tests := []struct {
		name       string
		st         *spec.ImageStatus
		id         string
		wantName   string
		wantDigest string
	}{
		{"no update", &spec.ImageStatus{Digest: next}, "one", name, next},
		{"idle update state", &spec.ImageStatus{Digest: next, Update: &spec.ImageUpdateStatus{Rejected: "sha256:cccc"}}, "two", name, next},
		{"moved", moving, "one", name, next},
		{"not moved yet: the pinned previous digest", moving, "two", "127.0.0.1:5000/library/app@" + prev, prev},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, d := containerImage(name, tt.st, tt.id)
			if n != tt.wantName || d != tt.wantDigest {
				t.Errorf("got %s %s, want %s %s", n, d, tt.wantName, tt.wantDigest)
			}
		})
	}
	// The pinned record is the repository at the digest, never the tag.
	if got := pinnedImageName("127.0.0.1:5000/library/busybox:1.36", "sha256:dd"); got != "127.0.0.1:5000/library/busybox@sha256:dd" {
		t.Errorf("pinned name: %s", got)
	}
}
