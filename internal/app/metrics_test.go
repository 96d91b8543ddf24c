package app

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// sample returns the value of the series in a /metrics body, such as
// `enricher_records_dead_lettered_total{reason="decode"}`.
func sample(body, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// After ten good records and two poison ones, /metrics counts each
// outcome, the PostHog responses and batches, and the committed offset and
// lag of the partition, next to the Kafka client and runtime metrics.
func TestMetricsCountOutcomes(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	values := append(records("m", 10), []byte(`{"id":`), []byte(`[1]`))
	k.ProduceValues(topic, values...)
	addr := freeAddr(t)
	h.start(map[string]string{"ENRICHER_HTTP_ADDR": addr})

	kafkatest.Eventually(t, 30*time.Second, "commit to the end", func() bool { return k.Committed(group, topic)[0] == 12 })
	var body string
	kafkatest.Eventually(t, 10*time.Second, "committed offset 12 exported", func() bool {
		_, body = probe(addr, "/metrics")
		v, _ := sample(body, `enricher_committed_offset{partition="0",topic="llm-calls"}`)
		return v == 12
	})

	want := map[string]float64{
		`enricher_records_consumed_total`:                                 12,
		`enricher_events_delivered_total`:                                 10,
		`enricher_records_dead_lettered_total{reason="decode"}`:           2,
		`enricher_events_in_flight`:                                       0,
		`enricher_events_truncated_total`:                                 0,
		`enricher_events_partially_enriched_total`:                        0,
		`enricher_duplicates_skipped_total`:                               0,
		`enricher_delivery_duration_seconds_count`:                        10,
		`enricher_high_watermark_offset{partition="0",topic="llm-calls"}`: 12,
		`enricher_consumer_lag_records{partition="0",topic="llm-calls"}`:  0,
	}
	for series, w := range want {
		got, ok := sample(body, series)
		if !ok {
			t.Errorf("%s missing from /metrics", series)
			continue
		}
		if got != w {
			t.Errorf("%s = %v, want %v", series, got, w)
		}
	}
	if got, _ := sample(body, `enricher_posthog_responses_total{code="200"}`); got < 1 {
		t.Errorf(`enricher_posthog_responses_total{code="200"} = %v, want at least 1`, got)
	}
	batches, _ := sample(body, `enricher_posthog_batch_size_events_count`)
	events, _ := sample(body, `enricher_posthog_batch_size_events_sum`)
	if batches < 1 || events != 10 {
		t.Errorf("PostHog batches = %v carrying %v events, want at least 1 carrying 10", batches, events)
	}
	for _, name := range []string{
		"enricher_posthog_request_duration_seconds_count",
		"enricher_poll_batch_size_records_count",
		`enricher_kafka_read_bytes_total{node_id="0"}`,
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if _, ok := sample(body, name); !ok {
			t.Errorf("%s missing from /metrics", name)
		}
	}
}

// chartFiles are the dashboard and alert rules that the Helm chart ships.
var chartFiles = []string{
	"../../deploy/helm/enricher/files/grafana-dashboard.json",
	"../../deploy/helm/enricher/files/prometheus-rules.yaml",
}

// countedOnError are client metrics that have no series until their first
// error.
var countedOnError = map[string]bool{
	"enricher_kafka_connect_errors_total": true,
	"enricher_kafka_read_errors_total":    true,
	"enricher_kafka_write_errors_total":   true,
}

var metricName = regexp.MustCompile(`\b(?:enricher|process|go)_[a-z_]+\b`)

// Every metric that the dashboard and the alert rules query is one that a
// running enricher with a lookup exports, so that a renamed metric cannot
// leave a panel or an alert silently empty.
func TestChartQueriesExportedMetrics(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"tier":"pro"}`))
	}))
	t.Cleanup(api.Close)
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	// The poison record makes the client produce to the dead-letter topic.
	k.ProduceValues(topic, append(records("q", 3), []byte(`{"id":`))...)
	addr := freeAddr(t)
	h.start(map[string]string{
		"ENRICHER_HTTP_ADDR": addr,
		"ENRICHER_LOOKUPS":   `[{"name":"users","key":"distinct_id","deadline":"5s","http":{"url":"` + api.URL + `/users/{key}","timeout":"2s"}}]`,
		"ENRICHER_RULES":     `[{"set":"tier","lookup":"users","field":"tier"}]`,
	})
	kafkatest.Eventually(t, 30*time.Second, "commit to the end", func() bool { return k.Committed(group, topic)[0] == 4 })
	// The broker stores a commit before the enricher reads the response
	// and sets its gauge, so wait for the gauge too.
	var body string
	kafkatest.Eventually(t, 10*time.Second, "committed offset exported", func() bool {
		_, body = probe(addr, "/metrics")
		return strings.Contains(body, `enricher_committed_offset{partition="0",topic="`+topic+`"} 4`)
	})

	exported := make(map[string]bool)
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			exported[name] = true
		}
	}
	for _, file := range chartFiles {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		queried := metricName.FindAllString(string(text), -1)
		if len(queried) == 0 {
			t.Fatalf("%s queries no metric", file)
		}
		for _, name := range queried {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && exported[b] {
					base = b
				}
			}
			if !exported[base] && !countedOnError[base] {
				t.Errorf("%s queries %s, which /metrics does not export", file, name)
			}
		}
	}
}
