// Package config reads the enricher's configuration from ENRICHER_*
// environment variables and validates it.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/llm-enricher/enricher/internal/enrich"
	"github.com/llm-enricher/enricher/internal/kafkaconn"
)

// Listen addresses of the HTTP server when ENRICHER_HTTP_ADDR is unset. The
// embedded mode, a local trial, serves on loopback only.
const (
	DefaultHTTPAddr         = ":8080"
	DefaultEmbeddedHTTPAddr = "127.0.0.1:8080"
)

// Prefix is the prefix of every variable.
const Prefix = "ENRICHER_"

// Sinks.
const (
	SinkPostHog = "posthog"
	SinkStdout  = "stdout"
)

// Config is the enricher's configuration. Each field names its variable,
// without the ENRICHER_ prefix, in its env tag.
type Config struct {
	// Embedded starts a Kafka broker on 127.0.0.1 inside the process,
	// seeded with sample records, for a first run without a cluster.
	// Brokers then default to that broker, and the sink to stdout unless
	// an API key is set.
	Embedded bool `env:"EMBEDDED"`
	// EmbeddedAddr is the embedded broker's listen address.
	EmbeddedAddr string `env:"EMBEDDED_ADDR" envDefault:"127.0.0.1:9092"`

	Kafka Kafka `envPrefix:"KAFKA_"`

	// DLQTopic receives records that can never become events, unchanged.
	// It must exist; the enricher does not create it.
	DLQTopic string `env:"DLQ_TOPIC" envDefault:"llm-calls.dlq"`

	// Sink is where events go: "posthog", or "stdout" for JSON lines on
	// standard output (dry runs). Empty means posthog, except in embedded
	// mode without an API key.
	Sink string `env:"SINK"`

	PostHog PostHog `envPrefix:"POSTHOG_"`

	// StaticProperties are added to every event: key=value pairs separated
	// by commas. A value keeps everything after the first "=".
	StaticProperties map[string]string `env:"STATIC_PROPERTIES" envKeyValSeparator:"="`

	// Enrich holds the enrichment rules, lookups, privacy mode and
	// redaction patterns: ENRICHER_RULES, ENRICHER_LOOKUPS,
	// ENRICHER_PRIVACY_MODE and ENRICHER_REDACT_PATTERNS.
	Enrich enrich.Config

	// ShutdownTimeout bounds a graceful shutdown after SIGTERM, from the
	// signal to exit.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"25s"`
	// RevokeTimeout bounds the wait for in-flight records of revoked
	// partitions before their final commit. It must be shorter than
	// ENRICHER_KAFKA_REBALANCE_TIMEOUT.
	RevokeTimeout time.Duration `env:"REVOKE_TIMEOUT" envDefault:"20s"`
	// MaxInFlight bounds the records read and not yet resolved. Each one
	// costs about 15 KB of heap for a 2 KB record while it waits for
	// PostHog, so the default keeps a backlog run under 256 MiB of RSS
	// (see docs/benchmarks.md).
	MaxInFlight int `env:"MAX_IN_FLIGHT" envDefault:"5000"`
	// MaxInFlightBytes bounds the value bytes of those records.
	MaxInFlightBytes int64 `env:"MAX_IN_FLIGHT_BYTES" envDefault:"67108864"`
	// CommitInterval is how often resolved offsets are committed.
	CommitInterval time.Duration `env:"COMMIT_INTERVAL" envDefault:"1s"`
	// ProgressTimeout is how long the enricher may go without progress
	// while records wait, before /healthz fails. Progress is a record
	// polled or resolved, or a response from PostHog. It must be longer
	// than ENRICHER_KAFKA_REBALANCE_TIMEOUT, because a rebalance stops
	// polling for up to that long.
	ProgressTimeout time.Duration `env:"PROGRESS_TIMEOUT" envDefault:"2m"`

	// HTTPAddr is the listen address of /metrics, /healthz and /readyz.
	// Unset means ":8080". Set and empty disables the server.
	HTTPAddr string `env:"HTTP_ADDR"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text. Empty means json, or text in embedded mode.
	LogFormat string `env:"LOG_FORMAT"`
}

// Kafka configures the source topics and the consumer group.
type Kafka struct {
	// Brokers are the seed brokers, host:port. Required unless embedded.
	Brokers []string `env:"BROKERS"`
	// Topics are the topics to consume.
	Topics []string `env:"TOPICS" envDefault:"llm-calls"`
	// Group is the consumer group; replicas in one group share the
	// partitions.
	Group string `env:"GROUP" envDefault:"posthog-enricher"`
	// ClientID names the client in broker logs and quotas.
	ClientID string `env:"CLIENT_ID" envDefault:"enricher"`
	// RebalanceTimeout is how long the group waits for members during a
	// rebalance.
	RebalanceTimeout time.Duration `env:"REBALANCE_TIMEOUT" envDefault:"60s"`
	// SessionTimeout is how long the group keeps a member that stopped
	// heartbeating.
	SessionTimeout time.Duration `env:"SESSION_TIMEOUT" envDefault:"45s"`

	// Conn holds the TLS and SASL settings, ENRICHER_KAFKA_TLS_* and
	// ENRICHER_KAFKA_SASL_*. They apply to every Kafka client: the
	// consumer, the dead-letter producer and Kafka table lookups.
	Conn kafkaconn.Config
}

// PostHog configures the PostHog sink.
type PostHog struct {
	// APIKey is the project API key. Required with the posthog sink.
	APIKey Secret `env:"API_KEY"`
	// Host is the PostHog host: https://us.i.posthog.com,
	// https://eu.i.posthog.com, or a self-hosted URL.
	Host string `env:"HOST" envDefault:"https://us.i.posthog.com"`
	// Gzip compresses request bodies.
	Gzip bool `env:"GZIP" envDefault:"true"`
	// BatchSize is the maximum number of events per request.
	BatchSize int `env:"BATCH_SIZE" envDefault:"100"`
	// Clients is how many posthog-go clients send batches side by side.
	// Each has its own queue and batching goroutine; more than one helps
	// only with a core to spare for each.
	Clients int `env:"CLIENTS" envDefault:"1"`
	// FlushInterval is the longest an event waits for its batch to fill.
	FlushInterval time.Duration `env:"FLUSH_INTERVAL" envDefault:"1s"`
	// CAFile is a PEM file of extra CA certificates for a self-hosted
	// PostHog behind a private CA. Empty means the system roots only.
	// HTTPS_PROXY and NO_PROXY apply as usual.
	CAFile string `env:"CA_FILE"`
}

// Secret is a string that never prints.
type Secret string

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

// GoString implements fmt.GoStringer, for %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler, for JSON and YAML.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Load reads the configuration from the environment and validates it. The
// error lists every problem, each naming its variable.
func Load() (Config, error) {
	return Parse(env.ToMap(os.Environ()))
}

// Parse is Load on the given environment, a map from variable to value.
func Parse(environ map[string]string) (Config, error) {
	var c Config
	// env parses every field it can before it reports the ones it cannot,
	// so the rest are still validated and every problem is reported.
	parseErr := env.ParseWithOptions(&c, env.Options{Prefix: Prefix, Environment: environ})
	// env applies envDefault to a variable set to "", too, so this default
	// is applied here, where an empty value can still mean "off".
	if _, set := environ[Prefix+"HTTP_ADDR"]; !set {
		c.HTTPAddr = DefaultHTTPAddr
		if c.Embedded {
			c.HTTPAddr = DefaultEmbeddedHTTPAddr
		}
	}
	c.applyDefaults()
	if parseErr == nil {
		return c, c.Validate()
	}
	parseErr = nameParseErrors(parseErr)
	return c, errors.Join(parseErr, withoutVariables(c.Validate(), failedVariables(parseErr)))
}

// failedVariables returns the variables that err names at the start of a
// message, as nameParseErrors writes them.
func failedVariables(err error) map[string]bool {
	names := make(map[string]bool)
	for _, e := range flatten(err) {
		if name, _, ok := strings.Cut(e.Error(), ":"); ok && strings.HasPrefix(name, Prefix) {
			names[name] = true
		}
	}
	return names
}

// withoutVariables drops the errors about the variables in names: a value
// that did not parse would also fail validation, as a zero value.
func withoutVariables(err error, names map[string]bool) error {
	var keep []error
	for _, e := range flatten(err) {
		name, _, _ := strings.Cut(e.Error(), ":")
		if !names[name] {
			keep = append(keep, e)
		}
	}
	return errors.Join(keep...)
}

// flatten returns the errors joined in err, recursively.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range joined.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}

func (c *Config) applyDefaults() {
	if c.Sink == "" {
		c.Sink = SinkPostHog
		if c.Embedded && c.PostHog.APIKey == "" {
			c.Sink = SinkStdout
		}
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
		if c.Embedded {
			c.LogFormat = "text"
		}
	}
}

// Validate checks the configuration and returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", Prefix, name, fmt.Sprintf(format, args...)))
	}

	switch {
	case len(c.Kafka.Brokers) == 0 && !c.Embedded:
		add("KAFKA_BROKERS", "required: a comma-separated list of host:port")
	default:
		for _, b := range c.Kafka.Brokers {
			if _, _, err := net.SplitHostPort(strings.TrimSpace(b)); err != nil || strings.TrimSpace(b) == "" {
				add("KAFKA_BROKERS", "invalid broker %q: want host:port", b)
			}
		}
	}
	if len(c.Kafka.Topics) == 0 || slices.Contains(c.Kafka.Topics, "") {
		add("KAFKA_TOPICS", "must list at least one topic, with no empty names")
	}
	if c.Kafka.Group == "" {
		add("KAFKA_GROUP", "must not be empty")
	}
	if c.DLQTopic == "" {
		add("DLQ_TOPIC", "must not be empty")
	} else if slices.Contains(c.Kafka.Topics, c.DLQTopic) {
		add("DLQ_TOPIC", "%q is also a source topic in ENRICHER_KAFKA_TOPICS", c.DLQTopic)
	}
	if c.RevokeTimeout <= 0 || c.RevokeTimeout >= c.Kafka.RebalanceTimeout {
		add("REVOKE_TIMEOUT", "%s must be positive and shorter than ENRICHER_KAFKA_REBALANCE_TIMEOUT (%s), or the group evicts the member while it delivers", c.RevokeTimeout, c.Kafka.RebalanceTimeout)
	}
	if c.ProgressTimeout > 0 && c.ProgressTimeout <= c.Kafka.RebalanceTimeout {
		add("PROGRESS_TIMEOUT", "%s must be longer than ENRICHER_KAFKA_REBALANCE_TIMEOUT (%s), or a slow rebalance fails the liveness check", c.ProgressTimeout, c.Kafka.RebalanceTimeout)
	}
	if c.Kafka.SessionTimeout <= 0 {
		add("KAFKA_SESSION_TIMEOUT", "must be positive")
	}

	errs = append(errs, c.validateSink()...)
	errs = append(errs, c.Kafka.Conn.Validate(), c.Enrich.Validate())

	for k := range c.StaticProperties {
		if k == "" {
			add("STATIC_PROPERTIES", "a property has an empty name: want key=value,key=value")
		}
	}
	positive := map[string]time.Duration{
		"SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
		"COMMIT_INTERVAL":  c.CommitInterval,
		"PROGRESS_TIMEOUT": c.ProgressTimeout,
	}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] <= 0 {
			add(name, "must be a positive duration, such as 30s")
		}
	}
	if c.MaxInFlight <= 0 {
		add("MAX_IN_FLIGHT", "must be positive")
	}
	if c.MaxInFlightBytes < 1<<20 {
		add("MAX_IN_FLIGHT_BYTES", "must be at least 1048576 (1 MiB)")
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		add("LOG_LEVEL", "%v", err)
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			add("HTTP_ADDR", "invalid address %q: want host:port, such as :8080, or empty to disable", c.HTTPAddr)
		}
	}
	if c.Embedded {
		if host, _, err := net.SplitHostPort(c.EmbeddedAddr); err != nil || host != "127.0.0.1" {
			add("EMBEDDED_ADDR", "invalid address %q: want 127.0.0.1:port, because the embedded broker serves this machine only", c.EmbeddedAddr)
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		add("LOG_FORMAT", "invalid format %q: want json or text", c.LogFormat)
	}
	return errors.Join(errs...)
}

func (c *Config) validateSink() []error {
	var errs []error
	add := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", Prefix, name, fmt.Sprintf(format, args...)))
	}
	switch c.Sink {
	case SinkStdout:
		return nil
	case SinkPostHog:
	default:
		add("SINK", "invalid sink %q: want posthog or stdout", c.Sink)
		return errs
	}
	if strings.TrimSpace(string(c.PostHog.APIKey)) == "" {
		add("POSTHOG_API_KEY", "required with the posthog sink, and must not be empty")
	}
	if u, err := url.Parse(c.PostHog.Host); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		add("POSTHOG_HOST", "invalid URL %q: want https://host", redactURL(c.PostHog.Host))
	} else if u.User != nil {
		add("POSTHOG_HOST", "%q contains credentials: remove them, because the API key authenticates and the host is logged", u.Redacted())
	}
	if c.PostHog.BatchSize <= 0 {
		add("POSTHOG_BATCH_SIZE", "must be positive")
	}
	if c.PostHog.Clients <= 0 {
		add("POSTHOG_CLIENTS", "must be positive")
	}
	if c.PostHog.FlushInterval <= 0 {
		add("POSTHOG_FLUSH_INTERVAL", "must be a positive duration, such as 1s")
	}
	return errs
}

// redactURL returns s with any user information replaced, also when s does
// not parse as a URL, so that a password in it is never printed.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	scheme, _, found := strings.Cut(s[:at], "://")
	if !found {
		return "[REDACTED]" + s[at:]
	}
	return scheme + "://[REDACTED]" + s[at:]
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("invalid level %q: want debug, info, warn or error", s)
	}
	return l, nil
}
