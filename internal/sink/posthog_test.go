package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/kafkatest"
)

func newSink(t *testing.T, srv *capturetest.Server, edit func(*PostHogConfig)) *PostHog {
	t.Helper()
	cfg := PostHogConfig{
		APIKey:        srv.Key,
		Host:          srv.URL,
		Gzip:          true,
		BatchSize:     50,
		FlushInterval: 50 * time.Millisecond,
		MaxQueue:      1000,
		RetryMin:      20 * time.Millisecond,
		RetryMax:      200 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewPostHog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func testEvent(i int) *event.Event {
	return &event.Event{
		UUID:       event.ID(fmt.Sprintf("c-%d", i), event.Source{}),
		Name:       event.Generation,
		DistinctID: fmt.Sprintf("u-%d", i),
		Timestamp:  time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC),
		Properties: map[string]any{"$ai_model": "gpt-4o-mini", "i": i},
	}
}

// results collects the outcome of each event by uuid.
type results struct {
	mu   sync.Mutex
	errs map[string][]error
}

func newResults() *results { return &results{errs: make(map[string][]error)} }

func (r *results) done(uuid string) func(error) {
	return func(err error) {
		r.mu.Lock()
		r.errs[uuid] = append(r.errs[uuid], err)
		r.mu.Unlock()
	}
}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.errs {
		n += len(e)
	}
	return n
}

func (r *results) get(uuid string) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs[uuid]...)
}

func TestPostHogDeliversEveryEvent(t *testing.T) {
	srv := capturetest.New(t)
	s := newSink(t, srv, nil)
	res := newResults()
	const n = 250
	for i := range n {
		ev := testEvent(i)
		s.Send(ev, res.done(ev.UUID))
	}
	kafkatest.Eventually(t, 10*time.Second, "all events done", func() bool { return res.count() == n })
	for i := range n {
		uuid := testEvent(i).UUID
		if errs := res.get(uuid); len(errs) != 1 || errs[0] != nil {
			t.Fatalf("event %d: done called with %v, want once with nil", i, errs)
		}
	}
	if got := srv.UUIDs(); len(got) != n {
		t.Errorf("server received %d distinct uuids, want %d", len(got), n)
	}
	if srv.Gzipped() == 0 {
		t.Error("no request was gzipped")
	}
	ev := srv.Events()[0]
	if ev.Timestamp != "2026-05-01T10:00:00Z" {
		t.Errorf("timestamp = %s, want the event's own", ev.Timestamp)
	}
}

// PostHog rejects a whole batch for one invalid event; the sink must find
// that event and deliver the others.
func TestPostHogIsolatesInvalidEvent(t *testing.T) {
	srv := capturetest.New(t)
	srv.Invalid(func(e capturetest.Event) bool { return e.DistinctID == "u-4" })
	s := newSink(t, srv, func(c *PostHogConfig) { c.FlushInterval = time.Second })
	res := newResults()
	for i := range 10 {
		ev := testEvent(i)
		s.Send(ev, res.done(ev.UUID))
	}
	kafkatest.Eventually(t, 10*time.Second, "all events done", func() bool { return res.count() == 10 })
	for i := range 10 {
		errs := res.get(testEvent(i).UUID)
		if i == 4 {
			if !errors.Is(errs[0], ErrRejected) {
				t.Errorf("invalid event: err = %v, want ErrRejected", errs[0])
			}
			// posthog-go's text repeats the status code; the sink's does not.
			if msg := fmt.Sprint(errs[0]); !strings.HasSuffix(msg, "PostHog responded 400 Bad Request") {
				t.Errorf("invalid event: err = %q, want it to end in the status line once", msg)
			}
			continue
		}
		if errs[0] != nil {
			t.Errorf("event %d: err = %v, want delivered", i, errs[0])
		}
	}
	if srv.Statuses()[400] == 0 {
		t.Error("the server never answered 400; the test did not exercise rejection")
	}
	if got := len(srv.UUIDs()); got != 9 {
		t.Errorf("server accepted %d events, want 9", got)
	}
}

// A 413 for a batch splits it; it is never sent whole again.
func TestPostHogSplitsBatchOn413(t *testing.T) {
	srv := capturetest.New(t)
	srv.Fault(func(n int) (int, time.Duration) {
		if n == 1 {
			return http.StatusRequestEntityTooLarge, 0
		}
		return 0, 0
	})
	s := newSink(t, srv, func(c *PostHogConfig) { c.FlushInterval = time.Second })
	res := newResults()
	for i := range 5 {
		ev := testEvent(i)
		s.Send(ev, res.done(ev.UUID))
	}
	kafkatest.Eventually(t, 10*time.Second, "all events done", func() bool { return res.count() == 5 })
	for i := range 5 {
		if errs := res.get(testEvent(i).UUID); errs[0] != nil {
			t.Errorf("event %d: err = %v, want delivered", i, errs[0])
		}
	}
	if got := srv.Statuses()[200]; got != 5 {
		t.Errorf("%d successful requests, want 5 single-event requests", got)
	}
}

func TestPostHogRetriesThroughOutage(t *testing.T) {
	srv := capturetest.New(t)
	srv.Fault(func(n int) (int, time.Duration) {
		if n <= 12 {
			return http.StatusServiceUnavailable, 0
		}
		return 0, 0
	})
	s := newSink(t, srv, nil)
	res := newResults()
	for i := range 20 {
		ev := testEvent(i)
		s.Send(ev, res.done(ev.UUID))
	}
	kafkatest.Eventually(t, 30*time.Second, "all events done", func() bool { return res.count() == 20 })
	for i := range 20 {
		if errs := res.get(testEvent(i).UUID); errs[0] != nil {
			t.Errorf("event %d: err = %v, want delivered after the outage", i, errs[0])
		}
	}
	if got := srv.Statuses()[503]; got != 12 {
		t.Errorf("server answered 503 %d times, want 12", got)
	}
}

func TestPostHogUnauthorizedWaits(t *testing.T) {
	srv := capturetest.New(t)
	s := newSink(t, srv, func(c *PostHogConfig) { c.APIKey = "phc_wrong" })
	res := newResults()
	ev := testEvent(1)
	s.Send(ev, res.done(ev.UUID))

	kafkatest.Eventually(t, 10*time.Second, "two 403 answers", func() bool { return srv.Statuses()[403] >= 2 })
	if err := s.Ready(); err == nil {
		t.Error("Ready() = nil after 403, want an error")
	}
	if n := res.count(); n != 0 {
		t.Fatalf("done called %d times while the key is rejected, want 0: the event must wait", n)
	}

	srv.SetKey("phc_wrong") // the project now accepts the sink's key
	kafkatest.Eventually(t, 10*time.Second, "event delivered", func() bool { return res.count() == 1 })
	if errs := res.get(ev.UUID); errs[0] != nil {
		t.Errorf("err = %v, want delivered", errs[0])
	}
	if err := s.Ready(); err != nil {
		t.Errorf("Ready() = %v after a success, want nil", err)
	}
}

func TestPostHogQueueFullIsRetried(t *testing.T) {
	srv := capturetest.New(t)
	srv.Latency(5 * time.Millisecond)
	s := newSink(t, srv, func(c *PostHogConfig) {
		c.MaxQueue = 1
		c.BatchSize = 1
	})
	res := newResults()
	const n = 100
	for i := range n {
		ev := testEvent(i)
		s.Send(ev, res.done(ev.UUID))
	}
	kafkatest.Eventually(t, 30*time.Second, "all events done", func() bool { return res.count() == n })
	for i := range n {
		if errs := res.get(testEvent(i).UUID); errs[0] != nil {
			t.Fatalf("event %d: err = %v, want delivered", i, errs[0])
		}
	}
	if got := len(srv.UUIDs()); got != n {
		t.Errorf("server received %d events, want %d", got, n)
	}
}

// An event whose uuid is in flight waits, and completes without being sent
// once PostHog accepts the first.
func TestPostHogSameUUIDTwice(t *testing.T) {
	srv := capturetest.New(t)
	var skipped atomic.Int64
	s := newSink(t, srv, func(c *PostHogConfig) { c.OnDuplicate = func() { skipped.Add(1) } })
	res := newResults()
	a, b := testEvent(1), testEvent(1)
	s.Send(a, res.done(a.UUID))
	s.Send(b, res.done(b.UUID))
	kafkatest.Eventually(t, 10*time.Second, "both done", func() bool { return res.count() == 2 })
	for _, err := range res.get(a.UUID) {
		if err != nil {
			t.Errorf("err = %v, want both delivered", err)
		}
	}
	if n := srv.UUIDs()[a.UUID]; n != 1 {
		t.Errorf("server received the uuid %d times, want once", n)
	}
	if n := skipped.Load(); n != 1 {
		t.Errorf("OnDuplicate called %d times, want 1", n)
	}
}

func TestPostHogCloseWhileServerHangs(t *testing.T) {
	srv := capturetest.New(t)
	srv.Hang()
	s := newSink(t, srv, nil)
	res := newResults()
	for i := range 5 {
		ev := testEvent(i)
		s.Send(ev, res.done(ev.UUID))
	}
	kafkatest.Eventually(t, 5*time.Second, "a request in flight", func() bool { return srv.Requests() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	s.Close(ctx)
	if n := res.count(); n != 5 {
		t.Fatalf("done called %d times after Close, want 5", n)
	}
	for i := range 5 {
		if errs := res.get(testEvent(i).UUID); !errors.Is(errs[0], ErrClosed) {
			t.Errorf("event %d: err = %v, want ErrClosed", i, errs[0])
		}
	}
	if got := len(srv.UUIDs()); got != 0 {
		t.Errorf("server accepted %d events while hanging", got)
	}
}

// TestPostHogSpreadsOverClients sends fewer events than one batch holds,
// so that one client would send them in one or two requests and three
// clients send at least three.
func TestPostHogSpreadsOverClients(t *testing.T) {
	srv := capturetest.New(t)
	s := newSink(t, srv, func(c *PostHogConfig) {
		c.Clients = 3
		c.BatchSize = 1000
		c.FlushInterval = 200 * time.Millisecond
	})
	res := newResults()
	const n = 300
	for i := range n {
		ev := testEvent(i)
		s.Send(ev, res.done(ev.UUID))
	}
	kafkatest.Eventually(t, 10*time.Second, "all events done", func() bool { return res.count() == n })
	for i := range n {
		if errs := res.get(testEvent(i).UUID); len(errs) != 1 || errs[0] != nil {
			t.Fatalf("event %d: done called with %v, want once with nil", i, errs)
		}
	}
	if got := srv.UUIDs(); len(got) != n {
		t.Errorf("server received %d distinct uuids, want %d", len(got), n)
	}
	if got := srv.Requests(); got < 3 {
		t.Errorf("server received %d requests, want at least one per client (3)", got)
	}
}
