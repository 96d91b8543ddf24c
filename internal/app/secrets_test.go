package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/kafkatest"
	"github.com/llm-enricher/enricher/internal/logging"
)

const (
	secretKey      = "phc_secretKey4b7e91d0"
	secretPassword = "kafka-pass-9d2f61c3"
)

// requireNoSecrets fails for each output that contains the PostHog key or
// the Kafka password.
func requireNoSecrets(t *testing.T, outputs map[string]string) {
	t.Helper()
	for name, out := range outputs {
		for _, secret := range []string{secretKey, secretPassword} {
			if strings.Contains(out, secret) {
				t.Errorf("%s contains the secret %q", name, secret)
			}
		}
	}
}

// An invalid configuration names every bad variable, and neither its error
// nor the printed configuration shows a secret.
func TestSecretsNotInConfigErrors(t *testing.T) {
	cfg, err := config.Parse(map[string]string{
		"ENRICHER_KAFKA_BROKERS":        "kafka:9092",
		"ENRICHER_POSTHOG_API_KEY":      secretKey,
		"ENRICHER_POSTHOG_HOST":         "not a url",
		"ENRICHER_KAFKA_SASL_MECHANISM": "PLAIN",
		"ENRICHER_KAFKA_SASL_PASSWORD":  secretPassword,
		"ENRICHER_REVOKE_TIMEOUT":       "5m",
		"ENRICHER_LOG_LEVEL":            "loud",
	})
	if err == nil {
		t.Fatal("Parse accepted an invalid configuration")
	}
	for _, name := range []string{"ENRICHER_POSTHOG_HOST", "ENRICHER_KAFKA_SASL_USERNAME", "ENRICHER_REVOKE_TIMEOUT", "ENRICHER_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if string(cfg.PostHog.APIKey) != secretKey || string(cfg.Kafka.Conn.SASLPassword) != secretPassword {
		t.Fatal("the parsed configuration lost the secrets, so the checks below prove nothing")
	}
	js, _ := json.Marshal(cfg)
	var logged lockedBuffer
	logging.New(&logged, "json", slog.LevelDebug).Error("invalid configuration", "err", err, "config", cfg)
	requireNoSecrets(t, map[string]string{
		"the error":  err.Error(),
		"%v":         fmt.Sprintf("%v", cfg),
		"%+v":        fmt.Sprintf("%+v", cfg),
		"%#v":        fmt.Sprintf("%#v", cfg),
		"JSON":       string(js),
		"a log line": logged.String(),
	})
}

// Two runs at Debug level against a broker that requires SASL: one with
// the right password and a key that PostHog rejects, one with a password
// the broker rejects. No log line, error, health response or metric shows
// either secret.
func TestSecretsNotInLogsOrMetrics(t *testing.T) {
	k := kafkatest.NewWith(t, []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "enricher", secretPassword),
	}, 1, topic, dlqT)
	auth := kgo.SASL(plain.Auth{User: "enricher", Pass: secretPassword}.AsMechanism())
	producer := k.Client(auth, kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, v := range append(records("k", 3), []byte(`{"id":`)) {
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: v}).FirstErr(); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
	capture := capturetest.New(t)
	capture.SetKey("phc_the_right_key")

	t.Run("key rejected", func(t *testing.T) {
		out := runForSecrets(t, k.Addrs()[0], capture, secretPassword, func() bool { return capture.Statuses()[403] >= 2 })
		requireNoSecrets(t, out)
	})
	t.Run("password rejected", func(t *testing.T) {
		var logs *lockedBuffer
		out := runForSecrets(t, k.Addrs()[0], capture, "wrong-"+secretPassword, func() bool {
			// The connection check warns about the failure.
			l := logs.String()
			return strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`)
		}, &logs)
		requireNoSecrets(t, out)
		// The wrong password contains the real one, so the check above
		// covers it too.
	})
}

// runForSecrets runs the enricher with the secrets set until done reports
// true, scraping /metrics, /healthz and /readyz on the way, and returns
// every output by name. logs, when given, receives the log buffer before
// the run starts.
func runForSecrets(t *testing.T, broker string, capture *capturetest.Server, password string, done func() bool, logs ...**lockedBuffer) map[string]string {
	t.Helper()
	addr := freeAddr(t)
	cfg, err := config.Parse(map[string]string{
		"ENRICHER_KAFKA_BROKERS":          broker,
		"ENRICHER_KAFKA_TOPICS":           topic,
		"ENRICHER_KAFKA_GROUP":            group,
		"ENRICHER_DLQ_TOPIC":              dlqT,
		"ENRICHER_KAFKA_SASL_MECHANISM":   "PLAIN",
		"ENRICHER_KAFKA_SASL_USERNAME":    "enricher",
		"ENRICHER_KAFKA_SASL_PASSWORD":    password,
		"ENRICHER_POSTHOG_API_KEY":        secretKey,
		"ENRICHER_POSTHOG_HOST":           capture.URL,
		"ENRICHER_POSTHOG_FLUSH_INTERVAL": "50ms",
		"ENRICHER_HTTP_ADDR":              addr,
		"ENRICHER_SHUTDOWN_TIMEOUT":       "5s",
		"ENRICHER_LOG_LEVEL":              "debug",
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var buf lockedBuffer
	for _, l := range logs {
		*l = &buf
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- Run(ctx, cfg, logging.New(&buf, "json", slog.LevelDebug), io.Discard) }()

	out := make(map[string]string)
	kafkatest.Eventually(t, 30*time.Second, "the run reached its failure", func() bool {
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			_, body := probe(addr, path)
			out[path] += body
		}
		return done()
	})
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			out["Run's error"] = err.Error()
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s")
	}
	out["the log"] = buf.String()
	if !strings.Contains(out["/metrics"], "enricher_records_consumed_total") {
		t.Error("/metrics was never scraped, so the checks prove nothing for it")
	}
	return out
}
