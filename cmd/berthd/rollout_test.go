package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig_Rollout(t *testing.T) {
	dir := t.TempDir()
	load := func(body string) (Config, error) {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return LoadConfig(p, true)
	}
	cfg, err := load("rollout: {atomicManifests: true, timeout: 30s}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Rollout.AtomicManifests || cfg.Rollout.Timeout.Duration != 30*time.Second || cfg.Rollout.MinReady.Duration != time.Second {
		t.Errorf("rollout: %+v (want atomic, 30s, the default minReady 1s)", cfg.Rollout)
	}
	if d := DefaultConfig().Rollout; d.AtomicManifests || d.Timeout.Duration != time.Minute {
		t.Errorf("default rollout: %+v", d)
	}
	if _, err := load("rollout: {minReady: -1s}\n"); err == nil || !strings.Contains(err.Error(), "rollout.minReady") {
		t.Errorf("negative minReady: %v", err)
	}
	if _, err := load("rollout: {atomic: true}\n"); err == nil {
		t.Error("an unknown rollout key was accepted")
	}
}
