// Package atomicfile writes small state files so that a crash at any point
// leaves either the old content or the new one, never a torn file: the
// records the network package and the CRI keep beside berth's stores.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to path through path.tmp, fsynced, renamed over path,
// and the directory fsynced so the rename itself survives a power cut.
// The file is created with mode 0600.
func Write(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, so the renames and removals in it are on
// disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
