package enrich

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/record"
)

// upstreamEnv makes the test binary serve the benchmark's user API instead
// of running tests. Its value is the response latency.
const upstreamEnv = "ENRICHER_BENCH_UPSTREAM"

// benchUpstream is a user API in a child process, so that its CPU time is
// not counted as the enricher's. It responds after a latency and records
// when each key was requested.
type benchUpstream struct {
	URL string
}

func newBenchUpstream(b *testing.B, latency time.Duration) *benchUpstream {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), upstreamEnv+"="+latency.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting the upstream process: %v", err)
	}
	b.Cleanup(func() {
		stdin.Close() // the child exits when its standard input closes
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("reading the upstream address: %v", err)
	}
	return &benchUpstream{URL: "http://" + strings.TrimSpace(addr)}
}

// serveUpstream runs the user API of the child process: it prints its
// address, serves /users/{key} after latency and /calls with the request
// times per path, and returns when standard input closes.
func serveUpstream(latency string) {
	delay, err := time.ParseDuration(latency)
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	calls := make(map[string][]time.Time)
	mux := http.NewServeMux()
	mux.HandleFunc("/users/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path] = append(calls[r.URL.Path], time.Now())
		mu.Unlock()
		time.Sleep(delay)
		_, _ = w.Write([]byte(`{"plan":"pro"}`))
	})
	mux.HandleFunc("/calls", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(calls)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr().String())
	go func() { _ = http.Serve(ln, mux) }()
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// calls returns the request times per path.
func (u *benchUpstream) calls(b *testing.B) map[string][]time.Time {
	resp, err := http.Get(u.URL + "/calls")
	if err != nil {
		b.Fatalf("reading upstream calls: %v", err)
	}
	defer resp.Body.Close()
	var calls map[string][]time.Time
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		b.Fatalf("decoding upstream calls: %v", err)
	}
	return calls
}

// maxCallsPerTTL returns the largest number of requests for one key within
// any window of length ttl.
func (u *benchUpstream) maxCallsPerTTL(b *testing.B, ttl time.Duration) int {
	most := 0
	for _, times := range u.calls(b) {
		first := 0
		for last := range times {
			for times[last].Sub(times[first]) > ttl {
				first++
			}
			most = max(most, last-first+1)
		}
	}
	return most
}

func (u *benchUpstream) total(b *testing.B) int {
	n := 0
	for _, times := range u.calls(b) {
		n += len(times)
	}
	return n
}

// BenchmarkLookup enriches records whose user is looked up over HTTP with a
// 10 ms upstream on 127.0.0.1, in a child process. In "all-hit" every user is cached for the
// whole run. In "5pct-miss" one record in 20 has a new user, and the cached
// users expire every second and are refreshed in the background. Up to
// maxInFlight records are enriched at once, as the pipeline does.
//
// The "enrich" runs time Enrich alone. The "record" runs also decode each
// record from JSON and encode its event, the other work the service does
// per record, so that they show what a miss costs the service.
func BenchmarkLookup(b *testing.B) {
	for _, work := range []string{"enrich", "record"} {
		for _, bc := range []struct {
			name      string
			ttl       time.Duration
			missEvery int // 0: no new users
		}{
			{name: "all-hit", ttl: time.Hour},
			{name: "5pct-miss", ttl: time.Second, missEvery: 20},
		} {
			b.Run(work+"/"+bc.name, func(b *testing.B) { benchLookup(b, bc.ttl, bc.missEvery, work == "record") })
		}
	}
}

// benchRecord is a version 1 record of a user.
func benchRecord(user string) []byte {
	return fmt.Appendf(nil, `{"id":"c-1","timestamp":"2026-05-01T10:00:00Z","distinct_id":%q,`+
		`"provider":"openai","model":"gpt-4o-mini","input":[{"role":"user","content":"hi"}],`+
		`"output_choices":[{"role":"assistant","content":"hello"}],"input_tokens":12,"output_tokens":5,`+
		`"properties":{"conversation_id":"cv-9"}}`, user)
}

func benchLookup(b *testing.B, ttl time.Duration, missEvery int, decode bool) {
	const (
		hotUsers    = 1000
		maxInFlight = 4096
	)
	upstream := newBenchUpstream(b, 10*time.Millisecond)
	reg := prometheus.NewRegistry()
	cfg := Config{
		Lookups: jsonArray(b, map[string]any{
			"name": "users", "key": "distinct_id", "deadline": "5s",
			"cache": map[string]any{"ttl": ttl.String(), "negative_ttl": min(ttl, time.Second).String()},
			"http":  map[string]any{"url": upstream.URL + "/users/{key}"},
		}),
		Rules: jsonArray(b, map[string]any{"set": "plan", "lookup": "users", "field": "plan"}),
	}
	r := newRules(b, cfg, Options{Registerer: reg, Logger: nil})

	hot := make([]mapRecord, hotUsers)
	hotRaw := make([][]byte, hotUsers)
	warm := make([]chan struct{}, hotUsers)
	for i := range hot {
		hot[i] = mapRecord{"distinct_id": "u-" + strconv.Itoa(i)}
		hotRaw[i] = benchRecord("u-" + strconv.Itoa(i))
		warm[i] = startEnrich(r, newEvent(hot[i]), hot[i])
	}
	for _, done := range warm {
		waitDone(b, done)
	}
	warmCalls := upstream.total(b)
	warmHits := lookupCount(b, reg, "hits")
	warmMisses := lookupCount(b, reg, "misses")

	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	var partial atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	startCPU := processCPU()
	for i := range b.N {
		newUser := missEvery > 0 && i%missEvery == 0
		var ev *event.Event
		var rec Record
		switch {
		case decode:
			raw := hotRaw[i%hotUsers]
			if newUser {
				raw = benchRecord("new-" + strconv.Itoa(i))
			}
			var err error
			ev, rec, err = record.V1{}.Decode(record.Input{Value: raw})
			if err != nil {
				b.Fatal(err)
			}
		case newUser:
			rec = mapRecord{"distinct_id": "new-" + strconv.Itoa(i)}
			ev = &event.Event{Name: event.Generation, Properties: make(map[string]any, 4)}
		default:
			rec = hot[i%hotUsers]
			ev = &event.Event{Name: event.Generation, Properties: make(map[string]any, 4)}
		}
		slots <- struct{}{}
		wg.Add(1)
		r.Enrich(b.Context(), ev, rec, func() {
			if ev.Properties[event.PropPartial] != nil {
				partial.Add(1)
			}
			if decode {
				if _, err := json.Marshal(ev); err != nil {
					b.Error(err)
				}
			}
			<-slots
			wg.Done()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - startCPU
	b.StopTimer()

	hits := lookupCount(b, reg, "hits") - warmHits
	stale := lookupCount(b, reg, "stale_serves")
	misses := lookupCount(b, reg, "misses") - warmMisses
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	// CPU time of this process, without the upstream's. It depends less
	// than records/s on what else runs on the machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
	b.ReportMetric((hits+stale)/(hits+stale+misses), "hit-ratio")
	b.ReportMetric(float64(upstream.maxCallsPerTTL(b, ttl)), "max-calls/key/ttl")
	b.ReportMetric(float64(upstream.total(b)-warmCalls), "upstream-calls")
	// Records sent without the plan because the upstream could not keep
	// up within the deadline. A run with any is overloaded, and its
	// throughput does not count.
	b.ReportMetric(float64(partial.Load()), "partial-records")
}

func lookupCount(b *testing.B, reg *prometheus.Registry, name string) float64 {
	return metricValue(b, reg, "enricher_lookup_"+name+"_total", map[string]string{"lookup": "users"})
}

// BenchmarkEnrichNoLookup measures the path without lookups: a static
// value, two record copies and a template, finished before Enrich returns.
func BenchmarkEnrichNoLookup(b *testing.B) {
	cfg := Config{Rules: jsonArray(b,
		map[string]any{"set": "team", "value": "platform"},
		map[string]any{"set": "conversation_id", "record": "properties.conversation_id"},
		map[string]any{"set": "$session_id", "record": "properties.conversation_id"},
		map[string]any{"set": "$ai_span_name", "template": "{provider}: {model}"},
	)}
	r := newRules(b, cfg, Options{})
	rec := parseRecord(b, recordR)
	ev := newEvent(rec)
	done := func() {}

	b.ReportAllocs()
	for b.Loop() {
		clear(ev.Properties)
		r.Enrich(b.Context(), ev, rec, done)
	}
}
