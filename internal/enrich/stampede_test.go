package enrich

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-enricher/enricher/internal/event"
)

// userService is an httptest user API that counts its requests. It responds
// after latency, or, while hang is set, holds each request until the client
// gives up or fail is called, which responds to the held requests with 502.
type userService struct {
	*httptest.Server
	calls   atomic.Int64
	open    atomic.Int64 // requests without a response yet
	latency time.Duration
	hang    atomic.Bool
	failed  chan struct{}
	release chan struct{}
}

func newUserService(t *testing.T, latency time.Duration, body string) *userService {
	s := &userService{latency: latency, failed: make(chan struct{}), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		s.open.Add(1)
		defer s.open.Add(-1)
		if s.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-s.failed:
				w.WriteHeader(http.StatusBadGateway)
			case <-s.release:
			}
			return
		}
		time.Sleep(s.latency)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(func() {
		close(s.release)
		s.Close()
	})
	return s
}

// fail responds with 502 to the held requests, and to those that arrive
// while hang is set.
func (s *userService) fail() { close(s.failed) }

func TestLookupStampedeAndTimeout(t *testing.T) {
	const (
		records  = 500
		ttl      = time.Minute
		negTTL   = 10 * time.Second
		deadline = time.Second
	)
	users := newUserService(t, 200*time.Millisecond, `{"plan":"pro"}`)
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Lookups: jsonArray(t, map[string]any{
			"name":     "users",
			"key":      "distinct_id",
			"deadline": deadline.String(),
			"cache":    map[string]any{"ttl": ttl.String(), "negative_ttl": negTTL.String(), "max_stale": ttl.String()},
			// The request timeout outlasts the deadline and the test, so
			// the events of the timeout phase are released by the deadline
			// alone.
			"http": map[string]any{"url": users.URL + "/users/{key}", "timeout": "1m"},
		}),
		Rules: jsonArray(t, map[string]any{"set": "plan", "lookup": "users", "field": "plan"}),
	}
	r := newRules(t, cfg, Options{Registerer: reg, Now: clock.Now})
	rec := parseRecord(t, recordR)
	upstream := func(result string) float64 {
		return metricValue(t, reg, "enricher_lookup_upstream_duration_seconds", map[string]string{"lookup": "users", "result": result})
	}

	// enrichAll starts one Enrich per record, each at the time at(i), and
	// returns the events and their done channels.
	enrichAll := func(n int, at func(i int) time.Time) ([]*event.Event, []chan struct{}) {
		events := make([]*event.Event, n)
		dones := make([]chan struct{}, n)
		for i := range n {
			clock.Set(at(i))
			events[i] = newEvent(rec)
			dones[i] = startEnrich(r, events[i], rec)
		}
		return events, dones
	}
	start := clock.Now()

	t.Run("cold cache", func(t *testing.T) {
		events, dones := enrichAll(records, func(int) time.Time { return start })
		for i := range records {
			waitDone(t, dones[i])
			if got := events[i].Properties["plan"]; got != "pro" {
				t.Fatalf("event %d: plan = %v, want pro", i, got)
			}
		}
		if got := users.calls.Load(); got != 1 {
			t.Errorf("upstream calls = %d, want 1", got)
		}
	})

	t.Run("within 100ms of expiry", func(t *testing.T) {
		// Record i arrives 0.2 ms after record i-1, starting when the
		// entry expires, so all 500 arrive within 100 ms.
		expiry := start.Add(ttl)
		events, dones := enrichAll(records, func(i int) time.Time { return expiry.Add(time.Duration(i) * 200 * time.Microsecond) })
		for i := range records {
			if !isClosed(dones[i]) {
				t.Fatalf("event %d waited: a stale value must be served at once", i)
			}
			if got := events[i].Properties["plan"]; got != "pro" {
				t.Fatalf("event %d: plan = %v, want the stale pro", i, got)
			}
		}
		eventually(t, "the background refresh", func() bool { return upstream("found") == 2 })
		if got := users.calls.Load(); got != 2 {
			t.Errorf("upstream calls = %d, want 2: one fill and one refresh", got)
		}
	})

	// Past TTL and MaxStale, nothing is served without the upstream.
	expired := start.Add(10 * ttl)

	t.Run("upstream times out", func(t *testing.T) {
		users.hang.Store(true)
		events, dones := enrichAll(50, func(int) time.Time { return expired })
		for i, done := range dones {
			// The upstream never responds, so only the deadline can call
			// done.
			waitDone(t, done)
			ev := events[i]
			if _, ok := ev.Properties["plan"]; ok {
				t.Errorf("event %d: plan = %v, want no plan after a timeout", i, ev.Properties["plan"])
			}
			if ev.Properties[event.PropPartial] != true {
				t.Errorf("event %d: %s = %v, want true", i, event.PropPartial, ev.Properties[event.PropPartial])
			}
		}
		if got := users.calls.Load(); got != 3 {
			t.Errorf("upstream calls = %d, want 3", got)
		}
		// Every event went out while the one upstream request was still
		// held, so no event waited for more than the deadline.
		if got := users.open.Load(); got != 1 {
			t.Errorf("open upstream requests = %d after the events went out, want 1", got)
		}
		if got := upstream("error"); got != 0 {
			t.Errorf("failed upstream requests = %v before the upstream responded, want 0", got)
		}
	})

	t.Run("failure cached for the negative TTL", func(t *testing.T) {
		users.fail()
		eventually(t, "the failed request", func() bool { return upstream("error") == 1 })
		users.hang.Store(false)

		events, dones := enrichAll(20, func(i int) time.Time { return expired.Add(negTTL - time.Second) })
		for i := range dones {
			if !isClosed(dones[i]) {
				t.Fatalf("event %d waited: a cached failure must be served at once", i)
			}
			if events[i].Properties[event.PropPartial] != true {
				t.Errorf("event %d: %s = %v, want true", i, event.PropPartial, events[i].Properties[event.PropPartial])
			}
		}
		if got := users.calls.Load(); got != 3 {
			t.Errorf("upstream calls = %d, want still 3 while the failure is cached", got)
		}

		clock.Set(expired.Add(negTTL + time.Second))
		ev := newEvent(rec)
		enrichWait(t, r, ev, rec)
		if got := ev.Properties["plan"]; got != "pro" {
			t.Errorf("after the negative TTL: plan = %v, want pro", got)
		}
		if _, ok := ev.Properties[event.PropPartial]; ok {
			t.Errorf("after the negative TTL: %s is set, want unset", event.PropPartial)
		}
		if got := users.calls.Load(); got != 4 {
			t.Errorf("upstream calls = %d, want 4", got)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		labels := map[string]string{"lookup": "users"}
		for name, want := range map[string]float64{
			"enricher_lookup_misses_total":       records + 50 + 1,
			"enricher_lookup_stale_serves_total": records,
			"enricher_lookup_errors_total":       50 + 20,
		} {
			if got := metricValue(t, reg, name, labels); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	})
}

// TestLookupStampedeWithoutStale sends 500 records for one user within
// 100 ms after the cache entry expired, with stale serving off: they all
// wait for one upstream request instead of sending one each.
func TestLookupStampedeWithoutStale(t *testing.T) {
	const (
		records = 500
		ttl     = time.Minute
	)
	users := newUserService(t, 200*time.Millisecond, `{"plan":"pro"}`)
	clock := newFakeClock()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Lookups: jsonArray(t, map[string]any{
			"name":  "users",
			"key":   "distinct_id",
			"cache": map[string]any{"ttl": ttl.String(), "max_stale": "0s"},
			"http":  map[string]any{"url": users.URL + "/users/{key}", "timeout": "1m"},
		}),
		Rules: jsonArray(t, map[string]any{"set": "plan", "lookup": "users", "field": "plan"}),
	}
	r := newRules(t, cfg, Options{Registerer: reg, Now: clock.Now})
	rec := parseRecord(t, recordR)
	enrichWait(t, r, newEvent(rec), rec)
	if got := users.calls.Load(); got != 1 {
		t.Fatalf("upstream calls to fill the cache = %d, want 1", got)
	}

	expiry := clock.Now().Add(ttl)
	events := make([]*event.Event, records)
	dones := make([]chan struct{}, records)
	for i := range records {
		clock.Set(expiry.Add(time.Duration(i) * 200 * time.Microsecond))
		events[i] = newEvent(rec)
		dones[i] = startEnrich(r, events[i], rec)
	}
	for i := range records {
		waitDone(t, dones[i])
		if got := events[i].Properties["plan"]; got != "pro" {
			t.Fatalf("event %d: plan = %v, want pro", i, got)
		}
		if _, ok := events[i].Properties[event.PropPartial]; ok {
			t.Fatalf("event %d: marked partial, want complete", i)
		}
	}
	if got := users.calls.Load(); got != 2 {
		t.Errorf("upstream calls = %d, want 2: one fill and one for the 500 records", got)
	}
	labels := map[string]string{"lookup": "users"}
	if got := metricValue(t, reg, "enricher_lookup_misses_total", labels); got != records+1 {
		t.Errorf("misses = %v, want %d", got, records+1)
	}
	if got := metricValue(t, reg, "enricher_lookup_stale_serves_total", labels); got != 0 {
		t.Errorf("stale serves = %v, want 0 with max_stale 0s", got)
	}
}

// TestEnrichDoesNotSerialise checks that an event waiting for a slow lookup
// holds up no other event: events for other keys finish while it waits.
func TestEnrichDoesNotSerialise(t *testing.T) {
	blocked := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/users/slow" {
			select {
			case <-blocked:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write([]byte(`{"plan":"free"}`))
	}))
	defer srv.Close()
	defer close(blocked)

	cfg := Config{
		Lookups: jsonArray(t, map[string]any{
			"name": "users", "key": "distinct_id", "deadline": "10s",
			"http": map[string]any{"url": srv.URL + "/users/{key}", "timeout": "10s"},
		}),
		Rules: jsonArray(t, map[string]any{"set": "plan", "lookup": "users", "field": "plan"}),
	}
	r := newRules(t, cfg, Options{})

	slowRec := mapRecord{"distinct_id": "slow"}
	slowEvent := newEvent(slowRec)
	slowDone := startEnrich(r, slowEvent, slowRec)

	for _, user := range []string{"a", "b", "c"} {
		rec := mapRecord{"distinct_id": user}
		ev := newEvent(rec)
		enrichWait(t, r, ev, rec)
		if got := ev.Properties["plan"]; got != "free" {
			t.Errorf("user %s: plan = %v, want free", user, got)
		}
	}
	if isClosed(slowDone) {
		t.Errorf("the slow event finished before its upstream responded")
	}
	r.Close()
	waitDone(t, slowDone)
	if slowEvent.Properties[event.PropPartial] != true {
		t.Errorf("slow event closed early: %s = %v, want true", event.PropPartial, slowEvent.Properties[event.PropPartial])
	}
}
