package kafkaconn_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/llm-enricher/enricher/internal/kafkaconn"
)

const testPassword = "hunter2-very-secret"

// wrapper embeds Config the way the service configuration does.
type wrapper struct {
	Kafka kafkaconn.Config `envPrefix:"ENRICHER_KAFKA_"`
}

func TestConfigParsesEnvironment(t *testing.T) {
	var w wrapper
	err := env.ParseWithOptions(&w, env.Options{Environment: map[string]string{
		"ENRICHER_KAFKA_TLS_CA_FILE":    "/etc/kafka/ca.pem",
		"ENRICHER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
		"ENRICHER_KAFKA_SASL_USERNAME":  "enricher",
		"ENRICHER_KAFKA_SASL_PASSWORD":  testPassword,
	}})
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	got := w.Kafka
	if got.TLSCAFile != "/etc/kafka/ca.pem" {
		t.Errorf("TLSCAFile = %q", got.TLSCAFile)
	}
	if got.SASLPassword.Reveal() != testPassword {
		t.Error("SASLPassword does not hold the variable's value")
	}
	if got.TLSReloadInterval != 5*time.Second {
		t.Errorf("TLSReloadInterval = %s, want the 5s default", got.TLSReloadInterval)
	}
	if got.DialTimeout != 10*time.Second {
		t.Errorf("DialTimeout = %s, want the 10s default", got.DialTimeout)
	}
}

func TestConfigValidateNamesVariables(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name string
		cfg  kafkaconn.Config
		want []string
	}{{
		name: "unknown mechanism",
		cfg:  kafkaconn.Config{SASLMechanism: "GSSAPI", SASLPassword: testPassword},
		want: []string{"ENRICHER_KAFKA_SASL_MECHANISM: unknown mechanism \"GSSAPI\""},
	}, {
		name: "scram without credentials",
		cfg:  kafkaconn.Config{SASLMechanism: "SCRAM-SHA-256"},
		want: []string{
			"ENRICHER_KAFKA_SASL_USERNAME is required with ENRICHER_KAFKA_SASL_MECHANISM=SCRAM-SHA-256",
			"ENRICHER_KAFKA_SASL_PASSWORD is required with ENRICHER_KAFKA_SASL_MECHANISM=SCRAM-SHA-256",
		},
	}, {
		name: "password without mechanism",
		cfg:  kafkaconn.Config{SASLUsername: "enricher", SASLPassword: testPassword},
		want: []string{
			"ENRICHER_KAFKA_SASL_USERNAME is set but ENRICHER_KAFKA_SASL_MECHANISM is empty",
			"ENRICHER_KAFKA_SASL_PASSWORD is set but ENRICHER_KAFKA_SASL_MECHANISM is empty",
		},
	}, {
		name: "oauth without token file",
		cfg:  kafkaconn.Config{SASLMechanism: "OAUTHBEARER"},
		want: []string{"ENRICHER_KAFKA_SASL_OAUTH_TOKEN_FILE is required"},
	}, {
		name: "token file with plain",
		cfg: kafkaconn.Config{
			SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: testPassword,
			SASLOAuthTokenFile: missing,
		},
		want: []string{"ENRICHER_KAFKA_SASL_OAUTH_TOKEN_FILE is set but ENRICHER_KAFKA_SASL_MECHANISM=PLAIN does not use it"},
	}, {
		name: "region without aws",
		cfg:  kafkaconn.Config{SASLAWSRegion: "us-east-1"},
		want: []string{"ENRICHER_KAFKA_SASL_AWS_REGION is set but ENRICHER_KAFKA_SASL_MECHANISM is empty"},
	}, {
		name: "cert without key",
		cfg:  kafkaconn.Config{TLSCertFile: missing},
		want: []string{
			"ENRICHER_KAFKA_TLS_CERT_FILE and ENRICHER_KAFKA_TLS_KEY_FILE must be set together",
			"ENRICHER_KAFKA_TLS_CERT_FILE: stat " + missing,
		},
	}, {
		name: "missing CA file",
		cfg:  kafkaconn.Config{TLSCAFile: missing},
		want: []string{"ENRICHER_KAFKA_TLS_CA_FILE: stat " + missing},
	}, {
		name: "server name without TLS",
		cfg:  kafkaconn.Config{TLSServerName: "kafka.internal"},
		want: []string{"ENRICHER_KAFKA_TLS_SERVER_NAME is set but TLS is off"},
	}, {
		name: "negative durations",
		cfg:  kafkaconn.Config{TLSReloadInterval: -time.Second, DialTimeout: -time.Second},
		want: []string{"ENRICHER_KAFKA_TLS_RELOAD_INTERVAL: invalid value", "ENRICHER_KAFKA_DIAL_TIMEOUT: invalid value"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil {
				t.Fatal("Validate returned nil")
			}
			for _, want := range tt.want {
				assertContains(t, err, want)
			}
			assertLacks(t, err, testPassword)
		})
	}
}

func TestConfigValidateAcceptsValid(t *testing.T) {
	for _, cfg := range []kafkaconn.Config{
		{},
		{TLSEnabled: true, TLSServerName: "kafka.internal"},
		{SASLMechanism: "plain", SASLUsername: "u", SASLPassword: testPassword},
		{SASLMechanism: "AWS_MSK_IAM", SASLAWSRegion: "us-east-1", TLSEnabled: true},
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", cfg, err)
		}
	}
}

func TestConfigRedactsPassword(t *testing.T) {
	cfg := kafkaconn.Config{SASLMechanism: "PLAIN", SASLUsername: "enricher", SASLPassword: testPassword}

	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, cfg)
		if strings.Contains(out, testPassword) {
			t.Errorf("%s output %q contains the password", format, out)
		}
		if !strings.Contains(out, "[REDACTED]") {
			t.Errorf("%s output %q does not contain [REDACTED]", format, out)
		}
	}

	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("starting", "kafka", cfg, "password", cfg.SASLPassword)
	if strings.Contains(logs.String(), testPassword) {
		t.Errorf("slog output %q contains the password", logs.String())
	}
	var entry struct {
		Kafka    map[string]any `json:"kafka"`
		Password string         `json:"password"`
	}
	if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
		t.Fatalf("decoding slog output: %v", err)
	}
	if got := entry.Kafka["sasl_password"]; got != "[REDACTED]" {
		t.Errorf("slog kafka.sasl_password = %v, want [REDACTED]", got)
	}
	if entry.Password != "[REDACTED]" {
		t.Errorf("slog password = %q, want [REDACTED]", entry.Password)
	}

	encoded, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("encoding JSON: %v", err)
	}
	if strings.Contains(string(encoded), testPassword) {
		t.Errorf("JSON %s contains the password", encoded)
	}
}

func TestExplainPassesOtherErrors(t *testing.T) {
	cfg := kafkaconn.Config{}
	if err := cfg.Explain(nil); err != nil {
		t.Errorf("Explain(nil) = %v", err)
	}
	other := fmt.Errorf("some unrelated failure")
	if err := cfg.Explain(other); err != other {
		t.Errorf("Explain(other) = %v, want it unchanged", err)
	}
}
