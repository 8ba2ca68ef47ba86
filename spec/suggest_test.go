package spec

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"image", "command", "resources", "mounts", "pullPolicy"}
	tests := []struct{ key, want string }{
		{"Image", "image"},
		{"comand", "command"},
		{"resource", "resources"},
		{"imagePullPolicy", "pullPolicy"},
		{"xyz", ""},
		{"network", ""},
	}
	for _, tc := range tests {
		if got := closest(tc.key, known); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
