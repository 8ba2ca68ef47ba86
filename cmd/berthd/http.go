package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveHTTP starts the metrics and health server on cfg.MetricsAddress
// (empty: off) and returns its stop function. It serves
//
//	/metrics  the daemon's own registry (never the global one)
//	/healthz  200 while the process serves
//	/readyz   503 until setReady, then 200
//
// The default address is on loopback; exposing it is a configuration choice.
func (d *Daemon) serveHTTP() (stop func(), err error) {
	if d.cfg.MetricsAddress == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", d.cfg.MetricsAddress)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", d.cfg.MetricsAddress, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{
		Registry:            d.reg, // counts its own errors
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: sources not yet read and reconciled once")
			// Say which source holds it back, so a mistyped --manifests
			// is seen here and not only in the log.
			if d.decl != nil {
				for _, s := range d.decl.store.Sources() {
					if s.Err != nil {
						fmt.Fprintf(w, "source %s: %v\n", s.Name, s.Err)
					}
				}
			}
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server", "err", err)
		}
	}()
	d.log.Info("metrics serving", "address", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// setReady marks the daemon ready for /readyz. The controller calls it once
// every manifest source has been read and every object reconciled once;
// without a controller wired, Run calls it as soon as the API serves.
func (d *Daemon) setReady() {
	if !d.ready.Swap(true) {
		d.log.Info("berthd ready")
	}
}
