package enrich

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/lookup"
)

func TestMain(m *testing.M) {
	if latency := os.Getenv(upstreamEnv); latency != "" {
		serveUpstream(latency)
		return
	}
	// golang-lru v2.0.7 gives each expirable cache a cleanup goroutine
	// that never ends.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"))
}

// mapRecord is a Record over a decoded JSON object.
type mapRecord map[string]any

func (m mapRecord) Field(path string) (any, bool) {
	return lookup.Field(map[string]any(m), path)
}

// recordR is the sample record of an LLM call used across the tests.
const recordR = `{"id":"c-001","timestamp":"2026-05-01T10:00:00Z","distinct_id":"u-42",
 "provider":"openai","model":"gpt-4o-mini",
 "input":[{"role":"user","content":"hi"}],
 "output_choices":[{"role":"assistant","content":"hello"}],
 "input_tokens":12,"output_tokens":5,
 "properties":{"conversation_id":"cv-9"}}`

func parseRecord(t testing.TB, text string) mapRecord {
	t.Helper()
	v, err := decodeValue([]byte(text))
	if err != nil {
		t.Fatalf("decoding test record: %v", err)
	}
	return mapRecord(v.(map[string]any))
}

// newEvent returns the event the pipeline would build from rec, before
// enrichment.
func newEvent(rec mapRecord) *event.Event {
	distinct, _ := rec["distinct_id"].(string)
	return &event.Event{
		Name:       event.Generation,
		DistinctID: distinct,
		Properties: map[string]any{
			"$ai_provider":       rec["provider"],
			"$ai_model":          rec["model"],
			"$ai_input":          rec["input"],
			"$ai_output_choices": rec["output_choices"],
		},
	}
}

// newRules builds Rules and closes them when the test ends.
func newRules(t testing.TB, cfg Config, opts Options) *Rules {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	r, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// doneWaitLimit bounds how long a test waits for done. It is a guard
// against a hang, not a timing assertion: every wait in these tests ends
// far sooner.
const doneWaitLimit = 20 * time.Second

// enrichWait runs Enrich and waits until done is called. It fails the test
// if done is called twice or not at all.
func enrichWait(t testing.TB, r *Rules, ev *event.Event, rec Record) {
	t.Helper()
	done := startEnrich(r, ev, rec)
	waitDone(t, done)
}

// startEnrich runs Enrich and returns a channel closed by done. A second
// call of done panics on the double close.
func startEnrich(r *Rules, ev *event.Event, rec Record) chan struct{} {
	done := make(chan struct{})
	r.Enrich(context.Background(), ev, rec, func() { close(done) })
	return done
}

func waitDone(t testing.TB, done chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(doneWaitLimit):
		t.Fatalf("done was not called within %s", doneWaitLimit)
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// fakeClock is a settable clock for cache expiry.
type fakeClock struct{ nanos atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.nanos.Store(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *fakeClock) Set(t time.Time)         { c.nanos.Store(t.UnixNano()) }
func (c *fakeClock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

// metricValue returns the value of a counter, or the sample count of a
// histogram, with the given labels. It returns 0 when the series does not
// exist yet.
func metricValue(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			if m.GetHistogram() != nil {
				return float64(m.GetHistogram().GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
			found++
		}
	}
	return found == len(want)
}

// eventually waits until cond holds, for state that another goroutine
// reaches at its own pace, such as a Kafka table catching up. The limit is
// a guard against a hang, not a timing assertion.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(doneWaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, doneWaitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jsonArray encodes values as a JSON array, for configuration variables.
func jsonArray(t testing.TB, values ...any) string {
	t.Helper()
	b, err := json.Marshal(values)
	if err != nil {
		t.Fatalf("encoding config: %v", err)
	}
	return string(b)
}

func errorContains(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
