// Package app wires the enricher together from its configuration and runs
// it until a signal, in the shutdown order that DESIGN.md states.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/consume"
	"github.com/llm-enricher/enricher/internal/dlq"
	"github.com/llm-enricher/enricher/internal/embedded"
	"github.com/llm-enricher/enricher/internal/enrich"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/httpconn"
	"github.com/llm-enricher/enricher/internal/kafkaconn"
	"github.com/llm-enricher/enricher/internal/metrics"
	"github.com/llm-enricher/enricher/internal/pipeline"
	"github.com/llm-enricher/enricher/internal/record"
	"github.com/llm-enricher/enricher/internal/sink"
)

// ErrUndelivered is returned by Run when the shutdown deadline passed with
// events not yet delivered. Their records stay uncommitted.
var ErrUndelivered = errors.New("events left undelivered at shutdown")

// Run runs the enricher until ctx ends, then shuts down within
// cfg.ShutdownTimeout. stdout receives events when the stdout sink is on.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	if cfg.Embedded {
		cluster, err := embedded.Start(ctx, cfg.EmbeddedAddr, append(cfg.Kafka.Topics, cfg.DLQTopic))
		if err != nil {
			return err
		}
		defer cluster.Close()
		if len(cfg.Kafka.Brokers) == 0 {
			cfg.Kafka.Brokers = cluster.ListenAddrs()
		}
		log.Info("embedded Kafka broker started; publish with kcat",
			"brokers", cfg.Kafka.Brokers, "topic", cfg.Kafka.Topics[0],
			"example", fmt.Sprintf("kcat -P -b %s -t %s", cfg.Kafka.Brokers[0], cfg.Kafka.Topics[0]))
	}

	connOpts, err := cfg.Kafka.Conn.Opts()
	if err != nil {
		return err
	}
	ln, err := listenHTTP(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	if ln != nil {
		// Serving takes the listener over; this closes it on an early
		// return before that.
		defer ln.Close()
	}
	// Each run has its own registry, so that runs in one process (tests)
	// do not collide.
	reg := newRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return err
	}
	prog := newProgress(cfg.ProgressTimeout, nil)
	snk, ready, err := newSink(cfg, log, stdout, m, prog.mark)
	if err != nil {
		return err
	}
	enricher, err := newEnricher(cfg, connOpts, reg, log)
	if err != nil {
		snk.Close(context.Background())
		return err
	}
	defer enricher.Close()

	// work ends when the shutdown deadline passes: dead-letter retries and
	// lookups stop then.
	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()

	// The handler and the observer run only once cons.Run starts, after
	// both are set.
	var (
		pipe *pipeline.Pipeline
		cons *consume.Consumer
	)
	obs := m.Consumer(func(topic string, part int32) (int64, bool) { return groupOffset(cons, topic, part) })
	cons, err = consume.New(consume.Config{
		Opts:             append(kafkaOpts(cfg, connOpts, log), kgo.WithHooks(kafkaMetrics(reg))),
		Topics:           cfg.Kafka.Topics,
		Group:            cfg.Kafka.Group,
		RebalanceTimeout: cfg.Kafka.RebalanceTimeout,
		SessionTimeout:   cfg.Kafka.SessionTimeout,
		RevokeTimeout:    cfg.RevokeTimeout,
		CommitInterval:   cfg.CommitInterval,
		MaxInFlight:      cfg.MaxInFlight,
		MaxInFlightBytes: cfg.MaxInFlightBytes,
		Hold:             ready,
		Logger:           log,
		Observer:         obs,
		Skipped:          func(int) { prog.mark() },
	}, consume.HandlerFunc(func(r *kgo.Record, done func(bool)) {
		m.RecordStarted()
		prog.mark()
		pipe.Handle(r, func(resolved bool) {
			m.RecordDone()
			prog.mark()
			done(resolved)
		})
	}))
	if err != nil {
		snk.Close(context.Background())
		return err
	}
	// Dead letters above the consumer client's batch limit go through a
	// client of their own, one at a time. It connects at its first write.
	large, err := kgo.NewClient(append(kafkaOpts(cfg, connOpts, log),
		kgo.ProducerBatchMaxBytes(dlq.LargeMaxBytes), kgo.ProducerLinger(0))...)
	if err != nil {
		cons.Client().Close()
		snk.Close(context.Background())
		return fmt.Errorf("creating the Kafka client for large dead letters: %w", err)
	}
	defer large.Close()
	pipe = pipeline.New(work, pipeline.Config{
		Decoder:  record.V1{},
		Enricher: enricher,
		Sink:     snk,
		DLQ:      dlq.New(cons.Client(), large, cfg.DLQTopic, log),
		Logger:   log,
		// One worker per core: decoding and posthog-go's serialisation
		// are CPU work.
		Workers: runtime.GOMAXPROCS(0),
		Hooks: pipeline.Hooks{
			Delivered:    func(_ *event.Event, latency time.Duration) { m.Delivered(latency) },
			DeadLettered: m.DeadLettered,
			Truncated:    m.Truncated,
			Partial:      m.Partial,
		},
	})

	srv := startHTTP(ln, log, reg, newHealth(cons, ready, prog, log))
	stopCheck := startKafkaCheck(ctx, cfg, connOpts, log)
	defer stopCheck()
	stopEnds := watchEndOffsets(ctx, cons, obs, cfg.Kafka.Topics, endOffsetsInterval(cfg.ProgressTimeout), log)
	defer stopEnds()

	runDone := make(chan error, 1)
	go func() { runDone <- cons.Run(ctx) }()
	select {
	case <-ctx.Done():
	case err := <-runDone:
		runDone <- err
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	return shutdown(cfg.ShutdownTimeout, runDone, cons, snk, pipe, stopWork, srv, log)
}

// shutdown stops fetching, gives the records in flight until the deadline
// to be delivered, commits what was delivered, and leaves the group.
func shutdown(timeout time.Duration, runDone <-chan error, cons *consume.Consumer, snk sink.Sink,
	pipe *pipeline.Pipeline, stopWork context.CancelFunc, srv *http.Server, log *slog.Logger) error {
	deadline := time.Now().Add(timeout)
	// The last steps, closing the sink and committing, get a reserve of
	// the timeout that draining may not use.
	reserve := min(5*time.Second, timeout/4)

	runErr := <-runDone

	drainCtx, cancel := context.WithDeadline(context.Background(), deadline.Add(-reserve))
	left := cons.Drain(drainCtx)
	cancel()

	closeCtx, cancel := context.WithDeadline(context.Background(), deadline.Add(-reserve/2))
	if err := snk.Close(closeCtx); err != nil {
		log.Warn("closing the sink", "err", err)
	}
	cancel()
	stopWork()

	leaveCtx, cancel := context.WithDeadline(context.Background(), deadline)
	cons.Close(leaveCtx)
	cancel()
	if srv != nil {
		srv.Close()
	}

	if abandoned := pipe.Abandoned(); abandoned > 0 || left > 0 {
		log.Warn("shutdown deadline passed with events not sent; their records stay uncommitted and are read again",
			"events", max(abandoned, int64(left)))
		return errors.Join(runErr, ErrUndelivered)
	}
	log.Info("stopped")
	return runErr
}

// newSink returns the configured sink and, for PostHog, its readiness
// check. responded is called for each response from PostHog.
func newSink(cfg config.Config, log *slog.Logger, stdout io.Writer, m *metrics.Metrics, responded func()) (sink.Sink, func() error, error) {
	if cfg.Sink == config.SinkStdout {
		log.Info("writing events to standard output", "sink", cfg.Sink)
		return sink.NewWriter(stdout), nil, nil
	}
	transport, err := httpconn.Transport(cfg.PostHog.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%sPOSTHOG_CA_FILE: %w", config.Prefix, err)
	}
	// The transport compresses, below the metrics, which then count the
	// events of a batch without decompressing it. posthog-go's own gzip
	// costs several times more CPU.
	if cfg.PostHog.Gzip {
		transport = httpconn.Gzip(transport)
	}
	ph, err := sink.NewPostHog(sink.PostHogConfig{
		APIKey:        string(cfg.PostHog.APIKey),
		Host:          cfg.PostHog.Host,
		BatchSize:     cfg.PostHog.BatchSize,
		Clients:       cfg.PostHog.Clients,
		FlushInterval: cfg.PostHog.FlushInterval,
		MaxQueue:      cfg.MaxInFlight + cfg.PostHog.BatchSize,
		Transport:     m.Transport(transport, responded),
		OnDuplicate:   m.DuplicateSkipped,
		RetryMin:      500 * time.Millisecond,
		RetryMax:      30 * time.Second,
		Logger:        log,
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("sending events to PostHog", "host", cfg.PostHog.Host, "batch_size", cfg.PostHog.BatchSize)
	return ph, ph.Ready, nil
}

// newEnricher builds the enrichment rules, with the static properties
// applied first so that rules may override them.
func newEnricher(cfg config.Config, connOpts []kgo.Opt, reg prometheus.Registerer, log *slog.Logger) (*enrich.Rules, error) {
	lookupOpts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...)}, connOpts...)
	rules, err := enrich.New(cfg.Enrich, enrich.Options{
		Static:     cfg.StaticProperties,
		Registerer: reg,
		Logger:     log,
		KafkaOpts:  lookupOpts,
	})
	if err != nil {
		return nil, fmt.Errorf("building enrichment rules: %w", err)
	}
	return rules, nil
}

// groupOffset returns the group's committed offset of a partition as the
// consumer's client last fetched or committed it.
func groupOffset(cons *consume.Consumer, topic string, part int32) (int64, bool) {
	eo, ok := cons.Client().CommittedOffsets()[topic][part]
	return eo.Offset, ok
}

// kafkaMetrics returns franz-go's client metrics, enricher_kafka_*, for
// the consumer's client only: kprom registers its metrics once per client,
// and lookups and the connection check have clients of their own.
func kafkaMetrics(reg *prometheus.Registry) *kprom.Metrics {
	return kprom.NewMetrics(metrics.Namespace, kprom.Registry(reg), kprom.Subsystem("kafka"))
}

func kafkaOpts(cfg config.Config, connOpts []kgo.Opt, log *slog.Logger) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ClientID(cfg.Kafka.ClientID),
		kgo.WithLogger(kafkaconn.CollapseRepeats(kslog.New(log.With("component", "franz-go")))),
		// Bounds what the client buffers ahead of the pipeline.
		kgo.FetchMaxBytes(16 << 20),
		// A dead-letter write that cannot be acknowledged fails after this
		// long and is retried with backoff, so its failure is logged.
		kgo.RecordDeliveryTimeout(30 * time.Second),
	}, connOpts...)
}
