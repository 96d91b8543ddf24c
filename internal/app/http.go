package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/consume"
)

// health serves /healthz and /readyz.
type health struct {
	cons     *consume.Consumer
	ready    func() error
	progress *progress
	log      *slog.Logger
	// failing is set while liveness fails, so that only changes are logged.
	failing atomic.Bool
}

func newHealth(cons *consume.Consumer, ready func() error, p *progress, log *slog.Logger) *health {
	return &health{cons: cons, ready: ready, progress: p, log: log}
}

// readiness returns why the enricher is not ready, or nil: it is ready
// once the group has assigned it partitions and while PostHog accepts
// the API key.
func (h *health) readiness() error {
	select {
	case <-h.cons.Joined():
	default:
		return errors.New("not yet assigned partitions by the consumer group")
	}
	if h.ready != nil {
		return h.ready()
	}
	return nil
}

// liveness returns why the enricher should be restarted, or nil, and logs
// when that changes. While PostHog rejects the key, the enricher waits by
// design and a restart cannot help, so only readiness fails.
func (h *health) liveness() error {
	var err error
	if h.ready == nil || h.ready() == nil {
		err = h.progress.check(h.cons.Backlog())
	}
	switch {
	case err != nil && !h.failing.Swap(true):
		h.log.Error("liveness check failing; the orchestrator may restart the enricher", "err", err)
	case err == nil && h.failing.Swap(false):
		h.log.Info("liveness check passing again")
	}
	return err
}

func (h *health) serveReady(w http.ResponseWriter, _ *http.Request) {
	serveCheck(w, h.readiness())
}

func (h *health) serveLive(w http.ResponseWriter, _ *http.Request) {
	serveCheck(w, h.liveness())
}

func serveCheck(w http.ResponseWriter, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// listenHTTP opens the listener of the metrics and health server, so that
// a bad or busy address fails the start. An empty addr returns nil.
func listenHTTP(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%sHTTP_ADDR: serving metrics and health: %w", config.Prefix, err)
	}
	return ln, nil
}

// startHTTP serves metrics and health on ln; a nil ln serves nothing.
func startHTTP(ln net.Listener, log *slog.Logger, reg *prometheus.Registry, h *health) *http.Server {
	if ln == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/readyz", h.serveReady)
	mux.HandleFunc("/healthz", h.serveLive)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving metrics and health", "addr", ln.Addr().String())
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	return srv
}

// newRegistry returns a registry with the Go runtime and process metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
