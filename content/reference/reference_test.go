package reference

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "busybox", want: "index.docker.io/library/busybox:latest"},
		{in: "127.0.0.1:5000/a/b:1.0", want: "127.0.0.1:5000/a/b:1.0"},
		{in: "r.example/app@sha256:" + strings.Repeat("a", 64), want: "r.example/app@sha256:" + strings.Repeat("a", 64)},
		{in: "r.example/app@sha256:" + strings.Repeat("A", 64), bad: true}, // digests are lower-case hex
		{in: "", bad: true},
		{in: strings.Repeat("a", maxLen+1), bad: true},
		{in: "UPPER/case", bad: true},
	} {
		got, err := Name(tc.in)
		if tc.bad {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Name(%.20q): got %q, %v; want InvalidArgument", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Name(%q): got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
