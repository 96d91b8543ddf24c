package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/enrich"
	"github.com/llm-enricher/enricher/internal/record"
	"github.com/llm-enricher/enricher/internal/sink"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

func newWorkerPipeline(t *testing.T, ctx context.Context, out *testsupport.Buffer, workers int) *Pipeline {
	t.Helper()
	rules, err := enrich.New(enrich.Config{Rules: `[{"set":"team","value":"platform"}]`}, enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rules.Close)
	return New(ctx, Config{Decoder: record.V1{}, Enricher: rules, Sink: sink.NewWriter(out), Workers: workers})
}

func workerRecord(i int) *kgo.Record {
	v := fmt.Appendf(nil, `{"id":"c-%d","distinct_id":"u-%d","model":"m","input":[{"role":"user","content":"hi"}]}`, i, i%7)
	return &kgo.Record{Topic: "llm-calls", Partition: int32(i % 3), Offset: int64(i), Value: v}
}

func TestWorkersResolveEveryRecordOnce(t *testing.T) {
	const n = 2000
	var out testsupport.Buffer
	p := newWorkerPipeline(t, t.Context(), &out, 4)

	var wg sync.WaitGroup
	calls := make([]atomic.Int32, n)
	var unresolved atomic.Int32
	wg.Add(n)
	for i := range n {
		p.Handle(workerRecord(i), func(resolved bool) {
			if !resolved {
				unresolved.Add(1)
			}
			calls[i].Add(1)
			wg.Done()
		})
	}
	wg.Wait()

	checkDoneOnce(t, calls)
	if got := unresolved.Load(); got != 0 {
		t.Errorf("%d records unresolved, want 0", got)
	}
	ids := make(map[string]bool)
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var ev struct {
			UUID       string         `json:"uuid"`
			Properties map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Properties["team"] != "platform" {
			t.Errorf("event %s: team = %v, want platform", ev.UUID, ev.Properties["team"])
		}
		ids[ev.UUID] = true
	}
	if len(ids) != n {
		t.Errorf("sink got %d distinct events, want %d", len(ids), n)
	}
}

func TestWorkersAbandonAfterContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out testsupport.Buffer
	p := newWorkerPipeline(t, ctx, &out, 2)
	cancel()

	resolved := make(chan bool, 1)
	p.Handle(workerRecord(1), func(ok bool) { resolved <- ok })
	if ok := <-resolved; ok {
		t.Error("record handled after the context ended was resolved, want abandoned")
	}
	if got := p.Abandoned(); got != 1 {
		t.Errorf("Abandoned() = %d, want 1", got)
	}
}

// newLookupPipeline returns a pipeline whose rule reads the user's tier
// from an HTTP lookup that responds after delay, so that enrichment ends
// on a goroutine other than the worker's.
func newLookupPipeline(t *testing.T, ctx context.Context, out *testsupport.Buffer, workers int, delay time.Duration) *Pipeline {
	t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `{"tier":"pro"}`)
	}))
	t.Cleanup(upstream.Close)
	rules, err := enrich.New(enrich.Config{
		Lookups: `[{"name":"users","key":"distinct_id","http":{"url":"` + upstream.URL + `/users/{key}"}}]`,
		Rules:   `[{"set":"tier","lookup":"users","field":"tier"}]`,
	}, enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rules.Close)
	return New(ctx, Config{Decoder: record.V1{}, Enricher: rules, Sink: sink.NewWriter(out), Workers: workers})
}

func TestWorkersSlowLookups(t *testing.T) {
	const n = 300
	var out testsupport.Buffer
	p := newLookupPipeline(t, t.Context(), &out, 2, 20*time.Millisecond)

	var wg sync.WaitGroup
	calls := make([]atomic.Int32, n)
	wg.Add(n)
	for i := range n {
		v := fmt.Appendf(nil, `{"id":"c-%d","distinct_id":"u-%d","model":"m"}`, i, i)
		p.Handle(&kgo.Record{Topic: "llm-calls", Offset: int64(i), Value: v}, func(resolved bool) {
			if !resolved {
				t.Errorf("record %d unresolved", i)
			}
			calls[i].Add(1)
			wg.Done()
		})
	}
	wg.Wait()

	checkDoneOnce(t, calls)
	tiers := 0
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var ev struct {
			Properties map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Properties["tier"] == "pro" {
			tiers++
		}
	}
	if tiers != n {
		t.Errorf("%d events have the looked-up tier, want %d", tiers, n)
	}
}

func TestWorkersLookupsPendingAtShutdown(t *testing.T) {
	const n = 50
	ctx, cancel := context.WithCancel(t.Context())
	var out testsupport.Buffer
	p := newLookupPipeline(t, ctx, &out, 2, time.Hour)

	var wg sync.WaitGroup
	calls := make([]atomic.Int32, n)
	wg.Add(n)
	for i := range n {
		v := fmt.Appendf(nil, `{"id":"c-%d","distinct_id":"u-%d","model":"m"}`, i, i)
		p.Handle(&kgo.Record{Topic: "llm-calls", Offset: int64(i), Value: v}, func(bool) {
			calls[i].Add(1)
			wg.Done()
		})
	}
	// The records wait on lookups that never respond until the context
	// ends, after which the workers are gone.
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()

	checkDoneOnce(t, calls)
}

// checkDoneOnce checks that each record's done callback ran exactly once.
func checkDoneOnce(t *testing.T, calls []atomic.Int32) {
	t.Helper()
	for i := range calls {
		if got := calls[i].Load(); got != 1 {
			t.Errorf("record %d: done called %d times, want 1", i, got)
		}
	}
}

// waitTimeout waits for wg, and fails the test when that takes longer
// than timeout, which means that a record's done was never called.
func waitTimeout(t *testing.T, wg *sync.WaitGroup, timeout time.Duration, scenario string) {
	t.Helper()
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(timeout):
		t.Fatalf("%s: done not called for every record within %v", scenario, timeout)
	}
}

// TestLookupsWithFewWorkers runs HTTP lookups that finish after Enrich
// returned, with the worker counts that send events on the lookup's
// goroutine, and cancels half of the runs while the lookups still wait.
func TestLookupsWithFewWorkers(t *testing.T) {
	const n = 100
	for _, workers := range []int{0, 1} {
		for _, cancelEarly := range []bool{false, true} {
			name := fmt.Sprintf("workers %d, cancel %v", workers, cancelEarly)
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				delay := 5 * time.Millisecond
				if cancelEarly {
					delay = time.Hour
				}
				var out testsupport.Buffer
				p := newLookupPipeline(t, ctx, &out, workers, delay)

				calls := make([]atomic.Int32, n)
				var resolved atomic.Int32
				var wg sync.WaitGroup
				wg.Add(n)
				for i := range n {
					v := fmt.Appendf(nil, `{"id":"c-%d","distinct_id":"u-%d","model":"m"}`, i, i)
					p.Handle(&kgo.Record{Topic: "llm-calls", Offset: int64(i), Value: v}, func(ok bool) {
						if ok {
							resolved.Add(1)
						}
						calls[i].Add(1)
						wg.Done()
					})
				}
				if cancelEarly {
					time.Sleep(20 * time.Millisecond)
					cancel()
				}
				waitTimeout(t, &wg, 30*time.Second, name)

				checkDoneOnce(t, calls)
				// The writer sink accepts events after the context ends, so
				// every record is resolved, with or without the tier.
				if got := resolved.Load(); got != n {
					t.Errorf("%d records resolved, want %d", got, n)
				}
			})
		}
	}
}

// TestHandleRacingCancel hands records in from several goroutines while
// the context ends, so that some arrive as the workers drain the queue and
// return. Every record must still be resolved or
// abandoned. The race is narrow, so the test repeats it.
func TestHandleRacingCancel(t *testing.T) {
	const (
		iterations = 3000
		senders    = 4
		perSender  = 50
	)
	rules, err := enrich.New(enrich.Config{Rules: `[{"set":"team","value":"platform"}]`}, enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rules.Close)

	lost := 0
	for iteration := range iterations {
		ctx, cancel := context.WithCancel(t.Context())
		p := New(ctx, Config{Decoder: record.V1{}, Enricher: rules, Sink: sink.NewWriter(io.Discard), Workers: 2})

		var calls atomic.Int32
		var handed sync.WaitGroup
		for range senders {
			handed.Go(func() {
				for i := range perSender {
					p.Handle(workerRecord(i), func(bool) { calls.Add(1) })
				}
			})
		}
		time.Sleep(time.Duration(iteration%50) * time.Microsecond)
		cancel()
		handed.Wait()

		deadline := time.Now().Add(time.Second)
		for calls.Load() != senders*perSender && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := calls.Load(); got != senders*perSender {
			lost++
			t.Logf("iteration %d: done called for %d of %d records", iteration, got, senders*perSender)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d iterations left a record without a done call", lost, iterations)
	}
}
