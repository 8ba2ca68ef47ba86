package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"berth.dev/berth/cri"
)

// serveCRI serves the kubelet's CRI on cfg.CRI.Address (off when empty)
// until ctx ends or stop is called.
func (d *Daemon) serveCRI(ctx context.Context) (stop func(), err error) {
	if d.cfg.CRI.Address == "" {
		return func() {}, nil
	}
	svc, err := cri.New(cri.Options{
		Node:           d.node,
		DB:             d.obs,
		Network:        d.net,
		CNIConfDir:     d.cfg.CNI.ConfDir,
		PauseBinary:    siblingBinary("berth-pause"),
		TempDir:        filepath.Join(d.cfg.State, ".tmp"),
		Root:           d.cfg.Root,
		SandboxImage:   d.cfg.CRI.SandboxImage,
		StreamAddress:  d.cfg.CRI.StreamAddress,
		ImageFsPath:    filepath.Join(d.cfg.Root, "snapshots", d.cfg.NodeDefaults().Snapshotter),
		Runtimes:       d.availableRuntimes(),
		DefaultRuntime: d.cfg.NodeDefaults().Runtime,
		Log:            d.log.With("component", "cri"),
		ObserveStream: func(method string, session func() error) error {
			return d.observeStream(criStreamingService, method, session)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cri: %w", err)
	}
	l, err := listenUnix(d.cfg.CRI.Address)
	if err != nil {
		return nil, fmt.Errorf("cri: %w", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Serve(cctx, l); err != nil {
			d.log.Error("cri server stopped", "err", err)
		}
	}()
	d.log.Info("cri serving", "address", d.cfg.CRI.Address)
	return func() {
		cancel()
		<-done
		_ = os.Remove(d.cfg.CRI.Address)
	}, nil
}

// availableRuntimes are the configured runtimes whose binary is there: a
// kubelet must not be offered a handler that fails every pod.
func (d *Daemon) availableRuntimes() []string {
	var out []string
	for name, bin := range d.cfg.Runtime.Runtimes {
		if _, err := exec.LookPath(bin); err == nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// siblingBinary is the named binary beside berthd's own executable, else
// on PATH, else "" (berth-pause is optional: a node with the sandbox image
// needs none).
func siblingBinary(name string) string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}
