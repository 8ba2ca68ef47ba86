package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
)

// Exit is the durable record of the init process's exit. The shim writes it
// before it answers Wait, so a berthd that was down when the task died
// still learns how it died.
type Exit struct {
	Pid        uint32    `json:"pid"`
	ExitStatus uint32    `json:"exit_status"`
	ExitedAt   time.Time `json:"exited_at"`
	OOMKilled  bool      `json:"oom_killed"`
}

// ReadExit reads <bundle>/exit.json. It fails with errdefs.ErrNotFound if
// the task has not exited (or its exit happened while no shim watched it).
func ReadExit(bundle string) (*Exit, error) {
	b, err := os.ReadFile(filepath.Join(bundle, ExitName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("exit record of %s: %w", bundle, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read exit record: %w", err)
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("exit record of %s: %w", bundle, err)
	}
	return &e, nil
}

// WriteExit stores e as <bundle>/exit.json: temp file, fsync, rename,
// directory fsync, so after a power cut the record is whole or absent.
func WriteExit(bundle string, e Exit) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return WriteFileSync(filepath.Join(bundle, ExitName), b, 0o600)
}

// WriteFileSync replaces path with b durably (temp file, fsync, rename,
// directory fsync): a reader after a crash sees the old file or the new
// one, never a torn one.
func WriteFileSync(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
