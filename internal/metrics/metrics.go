// Package metrics defines the enricher's Prometheus metrics: record and
// event counts, delivery latency, PostHog responses, and per-partition
// offsets and lag. All names start with enricher_.
package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace prefixes every metric name.
const Namespace = "enricher"

// Metrics are the enricher's own metrics. Lookups register theirs in
// internal/lookup, and the Kafka client's come from franz-go's kprom.
type Metrics struct {
	consumed     prometheus.Counter
	delivered    prometheus.Counter
	deadLettered *prometheus.CounterVec
	truncated    prometheus.Counter
	partial      prometheus.Counter
	duplicates   prometheus.Counter
	inFlight     prometheus.Gauge
	delivery     prometheus.Histogram
	pollSize     prometheus.Histogram

	responses   *prometheus.CounterVec
	requestTime prometheus.Histogram
	batchSize   prometheus.Histogram

	committed *prometheus.GaugeVec
	end       *prometheus.GaugeVec
	lag       *prometheus.GaugeVec
}

// latencyBuckets span a flush interval of milliseconds to retries that
// last minutes.
var latencyBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// sizeBuckets cover batches of one event up to the 1000 records of a poll.
var sizeBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		consumed: counter("records_consumed_total",
			"Kafka records handed to the pipeline."),
		delivered: counter("events_delivered_total",
			"Events that PostHog accepted."),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "records_dead_lettered_total",
			Help: "Records written to the dead-letter topic, by reason: decode, too_large or rejected.",
		}, []string{"reason"}),
		truncated: counter("events_truncated_total",
			"Events shortened to fit PostHog's size limit."),
		partial: counter("events_partially_enriched_total",
			"Events sent without the properties of a lookup that failed or timed out."),
		duplicates: counter("duplicates_skipped_total",
			"Events not sent because an event with the same uuid was accepted while they waited."),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "events_in_flight",
			Help: "Records handed to the pipeline and not yet delivered or dead-lettered.",
		}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "delivery_duration_seconds",
			Help:    "Time from handing an event to the sink until PostHog accepted it, batching and retries included.",
			Buckets: latencyBuckets,
		}),
		pollSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "poll_batch_size_records",
			Help:    "Records returned by one poll of the Kafka client.",
			Buckets: sizeBuckets,
		}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "posthog_responses_total",
			Help: "Responses to PostHog batch requests, by HTTP status code; code=\"error\" counts requests that got no response.",
		}, []string{"code"}),
		requestTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "posthog_request_duration_seconds",
			Help:    "Duration of PostHog batch requests, from sending to the response headers.",
			Buckets: latencyBuckets,
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "posthog_batch_size_events",
			Help:    "Events in one PostHog batch request, retries of a batch included.",
			Buckets: sizeBuckets,
		}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "committed_offset",
			Help: "Last offset this member committed, per assigned partition.",
		}, []string{"topic", "partition"}),
		end: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "high_watermark_offset",
			Help: "High watermark per assigned partition, from fetches and from listed end offsets.",
		}, []string{"topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "consumer_lag_records",
			Help: "High watermark minus committed offset, per assigned partition: records not yet committed.",
		}, []string{"topic", "partition"}),
	}
	// Series of every reason exist from the start, so that rates and
	// alerts see a rise from zero.
	for _, reason := range DeadLetterReasons {
		m.deadLettered.WithLabelValues(reason)
	}
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

// DeadLetterReasons are the reason labels of dead-lettered records, as the
// pipeline reports them.
var DeadLetterReasons = []string{"decode", "too_large", "rejected"}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.consumed, m.delivered, m.deadLettered, m.truncated, m.partial,
		m.duplicates, m.inFlight, m.delivery, m.pollSize,
		m.responses, m.requestTime, m.batchSize,
		m.committed, m.end, m.lag,
	}
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
}

// RecordStarted counts a record handed to the pipeline.
func (m *Metrics) RecordStarted() {
	m.consumed.Inc()
	m.inFlight.Inc()
}

// RecordDone counts a record whose event was delivered or dead-lettered,
// or that was abandoned at shutdown.
func (m *Metrics) RecordDone() { m.inFlight.Dec() }

// Delivered counts an event PostHog accepted latency after the sink got it.
func (m *Metrics) Delivered(latency time.Duration) {
	m.delivered.Inc()
	m.delivery.Observe(latency.Seconds())
}

// DeadLettered counts a record written to the dead-letter topic.
func (m *Metrics) DeadLettered(reason string) { m.deadLettered.WithLabelValues(reason).Inc() }

// Truncated counts an event shortened to fit.
func (m *Metrics) Truncated() { m.truncated.Inc() }

// Partial counts an event sent with a lookup missing.
func (m *Metrics) Partial() { m.partial.Inc() }

// DuplicateSkipped counts an event completed without sending because an
// event with its uuid was accepted.
func (m *Metrics) DuplicateSkipped() { m.duplicates.Inc() }
