package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// A metrics and health address that is taken fails the start with a
// message naming the variable, instead of running without probes.
func TestBusyHTTPAddrFailsStart(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	environ := make(map[string]string)
	for key, v := range h.env {
		environ[key] = v
	}
	environ["ENRICHER_HTTP_ADDR"] = busy.Addr().String()
	cfg, err := config.Parse(environ)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ENRICHER_HTTP_ADDR") {
		t.Errorf("Run = %v, want an error naming ENRICHER_HTTP_ADDR", err)
	}
	if ctx.Err() != nil {
		t.Error("Run ran until the test's deadline instead of failing at start")
	}
}
