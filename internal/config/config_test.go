package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func valid() map[string]string {
	return map[string]string{
		"ENRICHER_KAFKA_BROKERS":   "127.0.0.1:9092",
		"ENRICHER_POSTHOG_API_KEY": "phc_secret_value",
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse(valid())
	if err != nil {
		t.Fatal(err)
	}
	if c.Sink != SinkPostHog || c.PostHog.Host != "https://us.i.posthog.com" || c.Kafka.Topics[0] != "llm-calls" {
		t.Errorf("defaults = sink %q host %q topics %v", c.Sink, c.PostHog.Host, c.Kafka.Topics)
	}
	if !c.PostHog.Gzip {
		t.Error("gzip is off by default, want on")
	}
}

func TestStaticPropertiesKeepSeparators(t *testing.T) {
	c, err := Parse(with(valid(), "ENRICHER_STATIC_PROPERTIES", "auth=Bearer=abc,origin=https://h:443"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.StaticProperties["auth"]; got != "Bearer=abc" {
		t.Errorf("auth = %q, want everything after the first =", got)
	}
	if got := c.StaticProperties["origin"]; got != "https://h:443" {
		t.Errorf("origin = %q, want https://h:443", got)
	}
}

func TestEmptyRequiredValues(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		name string
	}{
		"empty key":             {with(valid(), "ENRICHER_POSTHOG_API_KEY", ""), "ENRICHER_POSTHOG_API_KEY"},
		"blank key":             {with(valid(), "ENRICHER_POSTHOG_API_KEY", "  "), "ENRICHER_POSTHOG_API_KEY"},
		"empty brokers":         {with(valid(), "ENRICHER_KAFKA_BROKERS", ""), "ENRICHER_KAFKA_BROKERS"},
		"comma brokers":         {with(valid(), "ENRICHER_KAFKA_BROKERS", ","), "ENRICHER_KAFKA_BROKERS"},
		"broker no port":        {with(valid(), "ENRICHER_KAFKA_BROKERS", "kafka"), "ENRICHER_KAFKA_BROKERS"},
		"no brokers":            {func() map[string]string { e := valid(); delete(e, "ENRICHER_KAFKA_BROKERS"); return e }(), "ENRICHER_KAFKA_BROKERS"},
		"bad host":              {with(valid(), "ENRICHER_POSTHOG_HOST", "us.i.posthog.com"), "ENRICHER_POSTHOG_HOST"},
		"dlq is source":         {with(valid(), "ENRICHER_DLQ_TOPIC", "llm-calls"), "ENRICHER_DLQ_TOPIC"},
		"bad sink":              {with(valid(), "ENRICHER_SINK", "kafka"), "ENRICHER_SINK"},
		"bad level":             {with(valid(), "ENRICHER_LOG_LEVEL", "loud"), "ENRICHER_LOG_LEVEL"},
		"revoke too long":       {with(valid(), "ENRICHER_REVOKE_TIMEOUT", "60s"), "ENRICHER_REVOKE_TIMEOUT"},
		"revoke over rebalance": {with(with(valid(), "ENRICHER_KAFKA_REBALANCE_TIMEOUT", "10s"), "ENRICHER_REVOKE_TIMEOUT", "15s"), "ENRICHER_REVOKE_TIMEOUT"},
		"progress too short":    {with(valid(), "ENRICHER_PROGRESS_TIMEOUT", "60s"), "ENRICHER_PROGRESS_TIMEOUT"},
		"zero shutdown":         {with(valid(), "ENRICHER_SHUTDOWN_TIMEOUT", "0s"), "ENRICHER_SHUTDOWN_TIMEOUT"},
		"tiny in-flight":        {with(valid(), "ENRICHER_MAX_IN_FLIGHT_BYTES", "10"), "ENRICHER_MAX_IN_FLIGHT_BYTES"},
		"unparsable number":     {with(valid(), "ENRICHER_MAX_IN_FLIGHT", "lots"), "ENRICHER_MAX_IN_FLIGHT"},
		"empty property key":    {with(valid(), "ENRICHER_STATIC_PROPERTIES", "=x"), "ENRICHER_STATIC_PROPERTIES"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.env)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

func TestReportsEveryProblem(t *testing.T) {
	_, err := Parse(map[string]string{"ENRICHER_KAFKA_TOPICS": ",", "ENRICHER_REVOKE_TIMEOUT": "2m"})
	for _, name := range []string{"ENRICHER_KAFKA_BROKERS", "ENRICHER_POSTHOG_API_KEY", "ENRICHER_KAFKA_TOPICS", "ENRICHER_REVOKE_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

func TestEmbeddedNeedsNoBrokersOrKey(t *testing.T) {
	c, err := Parse(map[string]string{"ENRICHER_EMBEDDED": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Sink != SinkStdout || c.LogFormat != "text" {
		t.Errorf("embedded: sink %q format %q, want stdout and text", c.Sink, c.LogFormat)
	}
	c, err = Parse(map[string]string{"ENRICHER_EMBEDDED": "true", "ENRICHER_POSTHOG_API_KEY": "phc_x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Sink != SinkPostHog {
		t.Errorf("embedded with a key: sink %q, want posthog", c.Sink)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c, err := Parse(valid())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "config", c, "key", c.PostHog.APIKey)
	js, _ := json.Marshal(c)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", c),
		"%#v":  fmt.Sprintf("%#v", c),
		"%s":   fmt.Sprintf("%s", c.PostHog.APIKey),
		"json": string(js),
		"slog": logs.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, "phc_secret_value") {
			t.Errorf("%s output contains the API key: %s", name, out)
		}
	}
	_, err = Parse(with(valid(), "ENRICHER_POSTHOG_HOST", "phc_secret_value"))
	if err == nil {
		t.Fatal("want an error")
	}
	// The host is not a secret and is shown; the key must not be.
	_, err = Parse(with(valid(), "ENRICHER_MAX_IN_FLIGHT", "x"))
	if err != nil && strings.Contains(err.Error(), "phc_secret_value") {
		t.Errorf("error contains the API key: %v", err)
	}
}

func TestHTTPAddrEmptyDisables(t *testing.T) {
	c, err := Parse(valid())
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != DefaultHTTPAddr {
		t.Errorf("unset ENRICHER_HTTP_ADDR = %q, want %q", c.HTTPAddr, DefaultHTTPAddr)
	}
	c, err = Parse(with(valid(), "ENRICHER_HTTP_ADDR", ""))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "" {
		t.Errorf("empty ENRICHER_HTTP_ADDR = %q, want empty, which disables the server", c.HTTPAddr)
	}
}
