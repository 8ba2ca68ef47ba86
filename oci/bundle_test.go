package oci

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func TestWriteBundle_ReadBundle(t *testing.T) {
	spec := generate(t, Settings{ID: "c", Resources: Resources{MemoryBytes: 64 << 20}})
	dir := filepath.Join(t.TempDir(), "bundles", "c")
	if err := WriteBundle(dir, spec); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {filepath.Join(dir, ConfigName), 0o600}} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != tc.want {
			t.Errorf("%s mode %v, want %v", tc.path, st.Mode(), tc.want)
		}
	}
	got, err := ReadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(spec, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}

	// Rewriting replaces the file and leaves no temporary behind; an
	// existing loose directory is tightened.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec.Hostname = "changed"
	if err := WriteBundle(dir, spec); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != ConfigName {
		t.Errorf("bundle holds %v, want only %s", entries, ConfigName)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v after rewrite, want 0700", st.Mode())
	}
	if got, err := ReadBundle(dir); err != nil || got.Hostname != "changed" {
		t.Errorf("read back hostname %v, %v; want changed", got, err)
	}
}

func TestReadBundle_Errors(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(outside, []byte(`{"ociVersion":"1.0.0","process":{"cwd":"/"},"root":{"path":"/"}}`), 0o600)
	for _, tc := range []struct {
		name    string
		setup   func(dir string)
		wantErr error
	}{
		{name: "missing", setup: func(string) {}, wantErr: errdefs.ErrNotFound},
		{name: "not json", setup: func(dir string) { os.WriteFile(filepath.Join(dir, ConfigName), []byte("{"), 0o600) }, wantErr: errdefs.ErrInvalidArgument},
		{name: "empty spec", setup: func(dir string) { os.WriteFile(filepath.Join(dir, ConfigName), []byte("{}"), 0o600) }, wantErr: errdefs.ErrInvalidArgument},
		{name: "directory", setup: func(dir string) { os.Mkdir(filepath.Join(dir, ConfigName), 0o700) }, wantErr: errdefs.ErrInvalidArgument},
		{name: "fifo", setup: func(dir string) { mkfifo(t, filepath.Join(dir, ConfigName)) }, wantErr: errdefs.ErrInvalidArgument},
		{name: "symlink not followed", setup: func(dir string) { symlink(t, outside, filepath.Join(dir, ConfigName)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			got, err := ReadBundle(dir)
			if tc.wantErr == nil {
				if err == nil {
					t.Fatalf("got %+v through a symlink", got)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %+v, %v; want %v", got, err, tc.wantErr)
			}
		})
	}
}

func TestWriteBundle_Errors(t *testing.T) {
	if err := WriteBundle(t.TempDir(), nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil spec: got %v, want invalid argument", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if err := WriteBundle(filepath.Join(file, "b"), generate(t, Settings{ID: "c"})); err == nil {
		t.Error("bundle under a file: got no error")
	}
}
