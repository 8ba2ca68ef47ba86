package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/observed"
	"berth.dev/berth/shim/logs"
	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
)

// TestNode_Logs_Traversal: `berth -n ../../../../tmp logs x` reached the
// log of "x" under /tmp. Logs streams, past the API's namespace check, so
// the node refuses it itself: the container must exist, and no name that is
// not a DNS-1123 label becomes a path.
func TestNode_Logs_Traversal(t *testing.T) {
	dir := t.TempDir()
	bdb, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	db, err := observed.New(bdb)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	n := New(Options{DB: db, Tasks: TaskOptions{Root: root, State: filepath.Join(dir, "state")}})
	// A secret in the log format, outside the root.
	secret := filepath.Join(dir, "outside", "x", "output.log")
	if err := os.MkdirAll(filepath.Dir(secret), 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := logs.NewWriter(secret, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRecord("stdout", false, []byte("secret\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// <root>/logs/<ns>/x/output.log with ns = ../../outside is the secret.
	rel, err := filepath.Rel(filepath.Join(root, "logs"), filepath.Join(dir, "outside"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ns, id string }{
		{rel, "x"},
		{"../../../../" + strings.TrimPrefix(filepath.Join(dir, "outside"), "/"), "x"},
		{"default", "../../../outside/x"},
	} {
		var got []string
		err := n.Logs(context.Background(), tc.ns, tc.id, LogOptions{Tail: -1}, func(e LogEntry) error {
			got = append(got, string(e.Text))
			return nil
		})
		if err == nil || len(got) > 0 {
			t.Errorf("Logs(%q, %q): read %q, err %v; want an error and nothing read", tc.ns, tc.id, got, err)
		}
	}
}

func TestNode_PathNames(t *testing.T) {
	n := New(Options{Tasks: TaskOptions{Root: "/var/lib/berth", State: "/run/berth"}})
	tests := []struct {
		ns, id string
		want   string // the log path; "" means InvalidArgument
	}{
		{"default", "web", "/var/lib/berth/logs/default/web/output.log"},
		{"edge-1", "a1", "/var/lib/berth/logs/edge-1/a1/output.log"},
		{"../../../../tmp", "x", ""},
		{"..", "x", ""},
		{"default", "..", ""},
		{"default", "a/b", ""},
		{"", "web", ""},
		{"default", "", ""},
		{"Default", "web", ""},
	}
	for _, tt := range tests {
		got, err := n.LogPath(tt.ns, tt.id)
		if tt.want == "" {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("LogPath(%q, %q) = %q, %v; want InvalidArgument", tt.ns, tt.id, got, err)
			}
			if b, err := n.bundleDir(tt.ns, tt.id); !errdefs.IsInvalidArgument(err) {
				t.Errorf("bundleDir(%q, %q) = %q, %v; want InvalidArgument", tt.ns, tt.id, b, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("LogPath(%q, %q) = %q, %v; want %q", tt.ns, tt.id, got, err, tt.want)
		}
	}
}
