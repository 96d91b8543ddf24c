package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// manifest returns a List with a Deployment named enricher that loads the
// ConfigMap enricher and the Secret credentials, mounts the Secret
// kafka-tls at /etc/enricher/kafka-tls, and declares containerPort as its
// http port. caKey is the key of the CA bundle in the kafka-tls Secret.
func manifest(httpAddr, caKey string, containerPort int) string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf(`{"kind": "List", "items": [
  {"kind": "Deployment", "metadata": {"name": "enricher"}, "spec": {"template": {"spec": {
    "containers": [{
      "name": "enricher",
      "envFrom": [{"configMapRef": {"name": "enricher"}}, {"secretRef": {"name": "credentials"}}],
      "ports": [{"name": "http", "containerPort": %d}],
      "volumeMounts": [{"name": "kafka-tls", "mountPath": "/etc/enricher/kafka-tls"}]
    }],
    "volumes": [{"name": "kafka-tls", "secret": {"secretName": "kafka-tls"}}]
  }}}},
  {"kind": "ConfigMap", "metadata": {"name": "enricher"}, "data": {
    "ENRICHER_KAFKA_BROKERS": "kafka-0.kafka:9093",
    "ENRICHER_KAFKA_TLS_ENABLED": "true",
    "ENRICHER_KAFKA_TLS_CA_FILE": "/etc/enricher/kafka-tls/ca.crt",
    "ENRICHER_HTTP_ADDR": %q
  }},
  {"kind": "Secret", "metadata": {"name": "credentials"}, "data": {
    "ENRICHER_POSTHOG_API_KEY": %q
  }},
  {"kind": "Secret", "metadata": {"name": "kafka-tls"}, "data": {%q: %q}}
]}`, containerPort, httpAddr, b64([]byte("phc_test")), caKey, b64([]byte("placeholder")))
}

func TestRunAcceptsValidDeployment(t *testing.T) {
	if err := run(strings.NewReader(manifest(":8080", "ca.crt", 8080)), "enricher", "enricher"); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunRejects(t *testing.T) {
	tests := []struct {
		name       string
		input      string
		deployment string
		want       string
	}{
		{"missing mounted key", manifest(":8080", "bundle.pem", 8080), "enricher", "ENRICHER_KAFKA_TLS_CA_FILE"},
		{"port mismatch", manifest(":9090", "ca.crt", 8080), "enricher", "http container port 8080"},
		{"unknown deployment", manifest(":8080", "ca.crt", 8080), "other", "deployment other not found"},
		{"missing envFrom secret", strings.Replace(manifest(":8080", "ca.crt", 8080),
			`"name": "credentials"}, "data"`, `"name": "renamed"}, "data"`, 1), "enricher", "secret credentials not found"},
		{"invalid JSON", `{"kind": "List", "items": [`, "enricher", "decoding the JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(strings.NewReader(tt.input), tt.deployment, "enricher")
			if err == nil {
				t.Fatalf("run accepted the input, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestReadListConcatenated(t *testing.T) {
	input := `{"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"K": "1"}}
{"kind": "List", "items": [{"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"K": "2"}}]}`
	objects, err := readList(strings.NewReader(input))
	if err != nil {
		t.Fatalf("readList: %v", err)
	}
	if got := objects.configMaps["a"]["K"]; got != "2" {
		t.Errorf("ConfigMap a key K = %q, want %q from the later object", got, "2")
	}
}
