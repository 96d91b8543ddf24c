package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func newTestMetrics(t *testing.T) *Metrics {
	t.Helper()
	m, err := New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// value returns the value of a gauge series.
func value(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var out dto.Metric
	if err := g.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetGauge().GetValue()
}

// count returns the number of series of a collector.
func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

// Lag is the high watermark minus the committed offset: the group's offset
// from joining until this member commits, then its own commits.
func TestConsumerLag(t *testing.T) {
	m := newTestMetrics(t)
	c := m.Consumer(func(topic string, p int32) (int64, bool) { return 40, topic == "t" && p == 1 })
	c.Assigned("t", []int32{1, 2})

	c.HighWatermark("t", 1, 100)
	if got := value(t, m.lag.WithLabelValues("t", "1")); got != 60 {
		t.Errorf("lag from the group's offset = %v, want 60", got)
	}
	c.Committed("t", 1, 90)
	if got := value(t, m.lag.WithLabelValues("t", "1")); got != 10 {
		t.Errorf("lag after a commit = %v, want 10", got)
	}
	c.Committed("t", 1, 80) // an older commit reported late
	if got := value(t, m.committed.WithLabelValues("t", "1")); got != 90 {
		t.Errorf("committed offset = %v, want 90: offsets never move back", got)
	}

	c.HighWatermark("t", 2, 5) // no group offset and no commit yet
	if n := count(m.lag); n != 1 {
		t.Errorf("%d lag series, want 1: partition 2 has no known committed offset", n)
	}
}

// A revoked partition leaves no series behind, even when a commit of it
// is reported after the revoke.
func TestConsumerRevokeRemovesSeries(t *testing.T) {
	m := newTestMetrics(t)
	c := m.Consumer(nil)
	c.Assigned("t", []int32{0})
	c.HighWatermark("t", 0, 10)
	c.Committed("t", 0, 10)
	c.Revoked("t", []int32{0})
	c.Committed("t", 0, 10)
	c.HighWatermark("t", 0, 12)
	for name, v := range map[string]*prometheus.GaugeVec{"lag": m.lag, "committed": m.committed, "high watermark": m.end} {
		if n := count(v); n != 0 {
			t.Errorf("%d %s series after the revoke, want 0", n, name)
		}
	}
}
