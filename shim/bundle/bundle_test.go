package bundle

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestReadExit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := ReadExit(dir); !errdefs.IsNotFound(err) {
		t.Errorf("no record: got %v, want not found", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ExitName), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExit(dir); err == nil || errdefs.IsNotFound(err) || !strings.Contains(err.Error(), dir) {
		t.Errorf("torn record: got %v, want an error naming the bundle", err)
	}
	want := Exit{Pid: 7, ExitStatus: 1, ExitedAt: time.Unix(1, 0).UTC(), OOMKilled: true}
	if err := WriteExit(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExit(dir)
	if err != nil || *got != want {
		t.Errorf("round trip: got %+v, %v; want %+v", got, err, want)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temp files left beside the record: %v", ents)
	}
}

func TestWireClasses(t *testing.T) {
	t.Parallel()
	for _, c := range classes {
		err := FromWire(ToWire(fmt.Errorf("task x: %w", c.err)))
		if !errors.Is(err, c.err) || err.Error() != "task x: "+c.err.Error() {
			t.Errorf("%v through the wire: got %q (class kept: %v)", c.err, err, errors.Is(err, c.err))
		}
	}
	if err := FromWire(ToWire(errors.New("plain"))); err == nil || err.Error() != "plain" {
		t.Errorf("unclassed error through the wire: %v", err)
	}
	if ToWire(nil) != nil || FromWire(nil) != nil {
		t.Error("nil does not stay nil")
	}
}
