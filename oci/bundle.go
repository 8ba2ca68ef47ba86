package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigName is the spec's file name in a bundle.
const ConfigName = "config.json"

// maxConfig bounds what ReadBundle reads; a spec with the default seccomp
// profile is about 14 KiB.
const maxConfig = 4 << 20

// WriteBundle writes spec as dir/config.json, creating dir with mode 0700
// (and tightening an existing one to it) and the file with mode 0600. The
// file is written to a temporary name, fsynced, renamed over config.json
// and the directory fsynced, so after a crash or power cut config.json is
// the old spec or the new one, whole.
func WriteBundle(dir string, spec *specs.Spec) error {
	if spec == nil {
		return fmt.Errorf("write bundle %s: nil spec: %w", dir, errdefs.ErrInvalidArgument)
	}
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("write bundle %s: marshal spec: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+ConfigName+".tmp-*")
	if err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write bundle: fsync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, ConfigName)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write bundle: %w", err)
	}
	done = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write bundle: fsync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write bundle: fsync dir %s: %w", dir, err)
	}
	return nil
}

// ReadBundle reads dir/config.json. A missing file is errdefs.ErrNotFound;
// one that is not a regular file, is over 4 MiB or is not a spec is
// errdefs.ErrInvalidArgument.
func ReadBundle(dir string) (*specs.Spec, error) {
	name := filepath.Join(dir, ConfigName)
	f, err := os.OpenFile(name, os.O_RDONLY|nonblockNofollow, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read bundle %s: %w", dir, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read bundle %s: %s is not a regular file: %w", dir, ConfigName, errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfig+1))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if len(data) > maxConfig {
		return nil, fmt.Errorf("read bundle %s: over %d bytes: %w", dir, maxConfig, errdefs.ErrInvalidArgument)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("read bundle %s: %v: %w", dir, err, errdefs.ErrInvalidArgument)
	}
	if spec.Root == nil || spec.Process == nil {
		return nil, fmt.Errorf("read bundle %s: spec without root or process: %w", dir, errdefs.ErrInvalidArgument)
	}
	return &spec, nil
}
