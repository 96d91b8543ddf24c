// Command enricher consumes LLM call records from Kafka, turns each into a
// PostHog LLM analytics event with custom properties, and sends the events
// to PostHog. It is configured by ENRICHER_* environment variables; see the
// README.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/llm-enricher/enricher/internal/app"
	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/logging"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "enricher: invalid configuration:\n%v\n", err)
		return 2
	}
	log := newLogger(cfg)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := app.Run(ctx, cfg, log, os.Stdout); err != nil {
		if !errors.Is(err, app.ErrUndelivered) {
			log.Error("enricher failed", "err", err)
		}
		return 1
	}
	return 0
}

// newLogger logs to standard error in ENRICHER_LOG_FORMAT at
// ENRICHER_LOG_LEVEL, which Load has validated. franz-go's own lines reach
// it through kslog, with component=franz-go.
func newLogger(cfg config.Config) *slog.Logger {
	level, _ := config.ParseLevel(cfg.LogLevel)
	return logging.New(os.Stderr, cfg.LogFormat, level)
}
