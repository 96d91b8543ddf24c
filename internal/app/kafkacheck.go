package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/kafkaconn"
)

// Timing of the Kafka connection check.
const (
	// checkMinBackoff is the wait after the first failed ping. It doubles
	// after each further failure, up to checkMaxBackoff.
	checkMinBackoff = time.Second
	checkMaxBackoff = time.Minute
	// checkInterval is the time between two pings while connected.
	checkInterval = 30 * time.Second
	// checkTimeout bounds one ping, which may try every broker.
	checkTimeout = 30 * time.Second
	// checkErrorAttempt is the first failed attempt logged at Error rather
	// than Warn. With the backoff above it comes 15s (1+2+4+8s) after the
	// first failure, so that a short outage such as a broker restart logs
	// only warnings.
	checkErrorAttempt = 5
)

// kafkaCheck pings the brokers in the background and logs a failure with
// the setting to fix, as kafkaconn.Config.Explain names it. franz-go
// (v1.22.3) retries a failed connection on its own, but logs only the bare
// error at Info level ("re-updating metadata due to err: EOF"). The check
// never stops the enricher: a rejected password or an untrusted certificate
// can be fixed (a Secret rotated, a user created) while the process keeps
// running and not ready.
type kafkaCheck struct {
	// ping sends one request to any broker: kgo.Client.Ping.
	ping    func(context.Context) error
	conn    kafkaconn.Config
	brokers []string
	log     *slog.Logger
	// interval is the time between two pings while connected.
	interval time.Duration
}

// run pings until ctx ends. It logs each failure with the attempt number and
// the wait before the next attempt, and logs at Info when a ping succeeds
// after a failure or for the first time.
func (c *kafkaCheck) run(ctx context.Context) {
	connected := false
	failures := 0
	for {
		err := c.pingOnce(ctx)
		if ctx.Err() != nil {
			return
		}

		wait := c.interval
		switch {
		case err != nil:
			failures++
			wait = checkBackoff(failures)
			c.logFailure(ctx, err, failures, wait, connected)
		case !connected || failures > 0:
			c.log.Info("connected to Kafka", "brokers", c.brokers, "attempt", failures+1)
			connected, failures = true, 0
		}

		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (c *kafkaCheck) pingOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	return c.ping(ctx)
}

func (c *kafkaCheck) logFailure(ctx context.Context, err error, attempt int, wait time.Duration, wasConnected bool) {
	level := slog.LevelWarn
	if attempt >= checkErrorAttempt {
		level = slog.LevelError
	}
	msg := "connecting to Kafka failed; retrying"
	if wasConnected {
		msg = "connection to Kafka lost; retrying"
	}
	c.log.Log(ctx, level, msg,
		"err", c.conn.Explain(err),
		"attempt", attempt,
		"retry_in", wait.String(),
		"brokers", c.brokers)
}

// checkBackoff returns the wait after the given number of consecutive
// failures: checkMinBackoff doubled for each failure after the first, at
// most checkMaxBackoff.
func checkBackoff(failures int) time.Duration {
	wait := checkMinBackoff
	for i := 1; i < failures && wait < checkMaxBackoff; i++ {
		wait *= 2
	}
	return min(wait, checkMaxBackoff)
}

// startKafkaCheck runs a kafkaCheck until ctx ends or the returned function
// is called, which waits for the check to stop.
//
// The check has its own client rather than the consumer's. Its ping then
// dials at once, instead of waiting behind the consumer's requests to the
// same broker until the ping's deadline hides the dial error. Its
// connections are not reused after half of checkInterval idle, so each ping
// while connected opens a new connection with the current credentials and
// certificate files.
func startKafkaCheck(ctx context.Context, cfg config.Config, connOpts []kgo.Opt, log *slog.Logger) (stop func()) {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ClientID(cfg.Kafka.ClientID),
		kgo.ConnIdleTimeout(checkInterval / 2),
	}, connOpts...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		log.Error("Kafka connection check not started", "err", err)
		return func() {}
	}
	check := &kafkaCheck{
		ping:     client.Ping,
		conn:     cfg.Kafka.Conn,
		brokers:  cfg.Kafka.Brokers,
		log:      log,
		interval: checkInterval,
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		check.run(ctx)
	}()
	return func() {
		cancel()
		<-done
		client.Close()
	}
}
