package oci

import (
	"fmt"
	"path"
	"strings"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// maxEnvBytes bounds the environment, counted as the bytes execve
	// copies (each entry plus its NUL).
	maxEnvBytes = 1 << 20
	// maxArgsBytes bounds the command line the same way.
	maxArgsBytes = 1 << 20
	// defaultPath is containerd's and Docker's PATH for an image without one.
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// processArgs joins entrypoint and command with Docker's override rules:
// an entrypoint override replaces the image's Entrypoint and drops its Cmd;
// an args override replaces the Cmd.
func processArgs(img ocispec.ImageConfig, s Settings) ([]string, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if s.Entrypoint != nil {
		entrypoint, cmd = s.Entrypoint, nil
	}
	if s.Args != nil {
		cmd = s.Args
	}
	args := make([]string, 0, len(entrypoint)+len(cmd))
	args = append(args, entrypoint...)
	args = append(args, cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command: neither the image nor the container sets an entrypoint or a command: %w", errdefs.ErrInvalidArgument)
	}
	if args[0] == "" {
		return nil, fmt.Errorf("command: empty program name: %w", errdefs.ErrInvalidArgument)
	}
	total := 0
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("command %q: NUL byte in an argument: %w", args[0], errdefs.ErrInvalidArgument)
		}
		total += len(a) + 1
	}
	if total > maxArgsBytes {
		return nil, fmt.Errorf("command: %d bytes, limit %d: %w", total, maxArgsBytes, errdefs.ErrInvalidArgument)
	}
	if s.Init {
		args = append([]string{InitTarget, "--"}, args...)
	}
	return args, nil
}

// stopSignal resolves the signal a stop sends first, as its canonical
// name: the settings', else the image's STOPSIGNAL, else SIGTERM.
func stopSignal(img ocispec.ImageConfig, s Settings) (string, error) {
	v := s.StopSignal
	if v == "" {
		v = img.StopSignal
	}
	if v == "" {
		return "SIGTERM", nil
	}
	sig, err := spec.ParseSignal(v)
	if err != nil {
		if s.StopSignal == "" {
			return "", fmt.Errorf("image STOPSIGNAL: %w", err)
		}
		return "", fmt.Errorf("stop signal: %w", err)
	}
	return spec.SignalName(sig), nil
}

// processEnv merges the container's Env over the image's by key, keeping
// the image's order and appending new keys; PATH is defaulted when neither
// sets it. An image entry without '=' is dropped (Docker would take it from
// the daemon's environment, which a host decision berth does not make); a
// container entry without one is an error.
func processEnv(img ocispec.ImageConfig, s Settings) ([]string, error) {
	var (
		env   []string
		index = map[string]int{}
	)
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			env[i] = kv
			return
		}
		index[k] = len(env)
		env = append(env, kv)
	}
	for _, kv := range img.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			continue
		}
		set(kv)
	}
	for _, kv := range s.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return nil, fmt.Errorf("env %q: want KEY=VALUE: %w", kv, errdefs.ErrInvalidArgument)
		}
		set(kv)
	}
	if _, ok := index["PATH"]; !ok {
		set(defaultPath)
	}
	total := 0
	for _, kv := range env {
		total += len(kv) + 1
	}
	if total > maxEnvBytes {
		return nil, fmt.Errorf("env: %d bytes, limit %d: %w", total, maxEnvBytes, errdefs.ErrInvalidArgument)
	}
	return env, nil
}

// processCwd is the container's override or the image's WorkingDir, "/"
// by default, checked clean, absolute and outside /proc.
func processCwd(img ocispec.ImageConfig, s Settings) (string, error) {
	wd, what := img.WorkingDir, "image working dir"
	if s.WorkingDir != "" {
		wd, what = s.WorkingDir, "working dir"
	}
	if wd == "" {
		return "/", nil
	}
	if err := checkContainerPath(what, wd); err != nil {
		return "", err
	}
	return path.Clean(wd), nil
}
