package lookup

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of all lookups, labelled by lookup name.
type Metrics struct {
	hits     *prometheus.CounterVec
	misses   *prometheus.CounterVec
	errors   *prometheus.CounterVec
	stale    *prometheus.CounterVec
	upstream *prometheus.HistogramVec
}

// NewMetrics creates the lookup metrics and registers them on reg, unless
// reg is nil.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_lookup_hits_total",
			Help: "Lookups resolved from the cache or the in-memory table without waiting, found or not found.",
		}, []string{"lookup"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_lookup_misses_total",
			Help: "Lookups that waited for an upstream request or for the table to catch up.",
		}, []string{"lookup"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_lookup_errors_total",
			Help: "Lookups whose event went out without the lookup's properties because of a failure, a cached failure or the deadline.",
		}, []string{"lookup"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "enricher_lookup_stale_serves_total",
			Help: "Lookups resolved with an expired value while a background request refreshed it.",
		}, []string{"lookup"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "enricher_lookup_upstream_duration_seconds",
			Help:    "Duration of upstream lookup requests, by result: found, not_found or error.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"lookup", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.hits, m.misses, m.errors, m.stale, m.upstream} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering lookup metrics: %w", err)
		}
	}
	return m, nil
}

// lookupMetrics are the metrics of one lookup, curried so that counting
// does not allocate.
type lookupMetrics struct {
	hits, misses, errors, stale prometheus.Counter

	found, notFound, failed prometheus.Observer
}

func (m *Metrics) forLookup(name string) lookupMetrics {
	return lookupMetrics{
		hits:     m.hits.WithLabelValues(name),
		misses:   m.misses.WithLabelValues(name),
		errors:   m.errors.WithLabelValues(name),
		stale:    m.stale.WithLabelValues(name),
		found:    m.upstream.WithLabelValues(name, "found"),
		notFound: m.upstream.WithLabelValues(name, "not_found"),
		failed:   m.upstream.WithLabelValues(name, "error"),
	}
}
