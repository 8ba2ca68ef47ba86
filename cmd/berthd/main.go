// Command berthd is berth's node agent: manifest sources, controllers,
// stores, the ttrpc API and metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"berth.dev/berth/version"
	"sigs.k8s.io/yaml"
)

const defaultConfigPath = "/etc/berth/config.yaml"

const usage = "usage: berthd [flags]\n       berthd version\n       berthd config default"

// usageError is a bad command line: exit 2, as flag parsing does, so a
// script can tell it from a daemon that failed.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errBadFlags: flag has printed the error and the usage already.
var errBadFlags = errors.New("bad flags")

func main() {
	err := run(os.Args[1:])
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "berthd: %s\n%s\n", ue.msg, usage)
		os.Exit(2)
	case errors.Is(err, errBadFlags):
		os.Exit(2)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}

// subcommand runs berthd's non-daemon commands; they touch no root or
// state directory, whatever flags come before them. Any other word is
// refused: a stray argument must never start a daemon on the system paths.
func subcommand(args []string) error {
	switch {
	case len(args) == 1 && args[0] == "version":
		fmt.Printf("berthd:\n  Version: %s\n  Go:      %s\n", version.Version, runtime.Version())
		return nil
	case len(args) == 2 && args[0] == "config" && args[1] == "default":
		out, err := yaml.Marshal(DefaultConfig())
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(out)
		return err
	}
	return usageError{fmt.Sprintf("unknown command %q", strings.Join(args, " "))}
}

// requireRoot refuses to start as another user: berthd mounts overlayfs,
// creates cgroups and chowns image layers to their owners, so a non-root
// daemon would come up and fail later on the first image it unpacks.
func requireRoot() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("must run as root (running as uid %d): berthd mounts overlayfs, creates cgroups and chowns unpacked image layers", uid)
	}
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("berthd", flag.ContinueOnError)
	configPath := fs.String("config", defaultConfigPath, "config file")
	root := fs.String("root", "", "persistent state directory (default /var/lib/berth)")
	state := fs.String("state", "", "runtime state directory (default /run/berth)")
	address := fs.String("address", "", "API socket (default /run/berth/berth.sock)")
	manifests := fs.String("manifests", "", "watched manifest directory (default /etc/berth/manifests; \"\" in config turns it off)")
	metrics := fs.String("metrics-address", "", "metrics listen address (default 127.0.0.1:1338; \"off\" turns it off)")
	logLevel := fs.String("log-level", "", "debug|info|warn|error")
	criAddress := fs.String("cri-address", "", "CRI socket for the kubelet (default /run/berth/cri.sock; \"\" turns it off)")
	registryDir := fs.String("registry-config-dir", "", "registry hosts directory in containerd's certs.d format (default /etc/berth/certs.d)")
	cniBinDir := fs.String("cni-bin-dir", "", "CNI plugin directory, or a colon-separated list (default /usr/lib/cni)")
	cniConfDir := fs.String("cni-conf-dir", "", "CNI network configuration directory (default /etc/berth/cni/net.d)")
	cniBridge := fs.String("cni-bridge", "", "bridge of the built-in network \"bridge\" (default berth0)")
	cniSubnet := fs.String("cni-subnet", "", "subnet of the built-in network \"bridge\" (default 10.87.0.0/16)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errBadFlags
	}
	if fs.NArg() > 0 {
		return subcommand(fs.Args())
	}
	if err := requireRoot(); err != nil {
		return err
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "config" {
			explicit = true
		}
	})
	cfg, err := LoadConfig(*configPath, explicit)
	if err != nil {
		return err
	}
	// Flags given on the command line win over the config file.
	overrides := map[string]struct{ from, to *string }{
		"root": {root, &cfg.Root}, "state": {state, &cfg.State}, "address": {address, &cfg.Address},
		"manifests": {manifests, &cfg.Manifests}, "metrics-address": {metrics, &cfg.MetricsAddress},
		"log-level": {logLevel, &cfg.LogLevel}, "registry-config-dir": {registryDir, &cfg.Registries.ConfigDir},
		"cni-bin-dir": {cniBinDir, &cfg.CNI.BinDir}, "cni-conf-dir": {cniConfDir, &cfg.CNI.ConfDir},
		"cni-bridge": {cniBridge, &cfg.CNI.Bridge}, "cni-subnet": {cniSubnet, &cfg.CNI.Subnet},
		"cri-address": {criAddress, &cfg.CRI.Address},
	}
	fs.Visit(func(f *flag.Flag) {
		if o, ok := overrides[f.Name]; ok {
			*o.to = *o.from
		}
	})
	if cfg.Manifests != DefaultConfig().Manifests {
		cfg.ManifestsGiven = true
	}
	fs.Visit(func(f *flag.Flag) { cfg.ManifestsGiven = cfg.ManifestsGiven || f.Name == "manifests" })
	if cfg.MetricsAddress == "off" {
		cfg.MetricsAddress = ""
	}
	log := newLogger(cfg.LogLevel)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := NewDaemon(ctx, cfg, log)
	if err != nil {
		return err
	}
	err = d.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
