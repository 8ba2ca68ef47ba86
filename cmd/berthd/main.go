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
	"syscall"

	"sigs.k8s.io/yaml"
)

const defaultConfigPath = "/etc/berth/config.yaml"

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "config" && os.Args[2] == "default" {
		out, _ := yaml.Marshal(DefaultConfig())
		os.Stdout.Write(out)
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
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
	registryDir := fs.String("registry-config-dir", "", "registry hosts directory in containerd's certs.d format (default /etc/berth/certs.d)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: berthd [flags]\n       berthd config default")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
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
	}
	fs.Visit(func(f *flag.Flag) {
		if o, ok := overrides[f.Name]; ok {
			*o.to = *o.from
		}
	})
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
