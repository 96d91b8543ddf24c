package app

import (
	"bufio"
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
