package lookup

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// golang-lru v2.0.7 gives each expirable cache a cleanup goroutine
	// that never ends.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/hashicorp/golang-lru/v2/expirable.NewLRU[...].func1"))
}

func TestField(t *testing.T) {
	doc, err := decodeJSON([]byte(`{"metadata":{"user":{"tier":"pro"}},"input":[{"content":"hi"}],"n":1.5,"null":null}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		want   any
		wantOK bool
	}{
		{"metadata.user.tier", "pro", true},
		{"input.0.content", "hi", true},
		{"n", json.Number("1.5"), true},
		{"null", nil, true},
		{"input.1.content", nil, false},
		{"input.-1", nil, false},
		{"input.x", nil, false},
		{"metadata.user.tier.more", nil, false},
		{"absent", nil, false},
	}
	for _, tt := range tests {
		got, ok := Field(doc, tt.path)
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("Field(%q) = %v, %v, want %v, %v", tt.path, got, ok, tt.want, tt.wantOK)
		}
	}
	if got, ok := Field(doc, ""); !ok || got == nil {
		t.Errorf("Field with the empty path = %v, %v, want the document", got, ok)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in     any
		want   string
		wantOK bool
	}{
		{"a", "a", true},
		{json.Number("12"), "12", true},
		{12.5, "12.5", true},
		{int64(7), "7", true},
		{true, "true", true},
		{nil, "", false},
		{map[string]any{}, "", false},
	}
	for _, tt := range tests {
		if got, ok := String(tt.in); got != tt.want || ok != tt.wantOK {
			t.Errorf("String(%v) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseTable(t *testing.T) {
	tests := []struct {
		name, format, keyField, data string
		wantKeys                     []string
		wantErr                      string
	}{
		{name: "json object", format: FormatJSON, data: `{"acme":{"tier":"pro"},"globex":"plain"}`, wantKeys: []string{"acme", "globex"}},
		{name: "json array", format: FormatJSON, data: `[1]`, wantErr: "want a JSON object"},
		{name: "jsonl", format: FormatJSONL, keyField: "id", data: "{\"id\":\"a\"}\n\n{\"id\":7,\"x\":1}\n", wantKeys: []string{"a", "7"}},
		{name: "jsonl nested key", format: FormatJSONL, keyField: "user.id", data: `{"user":{"id":"u1"}}`, wantKeys: []string{"u1"}},
		{name: "jsonl missing key", format: FormatJSONL, keyField: "id", data: "{\"id\":\"a\"}\n{\"x\":1}\n", wantErr: "line 2: missing key field"},
		{name: "jsonl bad line", format: FormatJSONL, keyField: "id", data: "{\"id\":\"a\"}\n{\"id\":\n", wantErr: "line 2"},
		{name: "csv", format: FormatCSV, keyField: "id", data: "id,tier\na,pro\nb,free\n", wantKeys: []string{"a", "b"}},
		{name: "csv no key column", format: FormatCSV, keyField: "user", data: "id,tier\na,pro\n", wantErr: `no key column "user"`},
		{name: "csv ragged", format: FormatCSV, keyField: "id", data: "id,tier\na\n", wantErr: "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := parseTable([]byte(tt.data), tt.format, tt.keyField)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tt.wantKeys) {
				t.Errorf("got %d rows, want %d", len(rows), len(tt.wantKeys))
			}
			for _, k := range tt.wantKeys {
				if _, ok := rows[k]; !ok {
					t.Errorf("key %q missing from %v", k, rows)
				}
			}
		})
	}
}

func TestParseCSVRowValues(t *testing.T) {
	rows, err := parseCSV([]byte("id,tier,note\na,pro,\"x, y\"\n"), "id")
	if err != nil {
		t.Fatal(err)
	}
	row, _ := rows["a"].(map[string]any)
	if row["tier"] != "pro" || row["note"] != "x, y" || row["id"] != "a" {
		t.Errorf("row = %v, want id a, tier pro, note \"x, y\"", row)
	}
}

func newHTTPLookup(t *testing.T, url string) *Lookup {
	t.Helper()
	spec := Spec{Name: "users", Key: "distinct_id", HTTP: &HTTPSpec{URL: url}}
	spec.ApplyDefaults()
	if errs := spec.Validate("test"); len(errs) > 0 {
		t.Fatal(errs)
	}
	l, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func get(t *testing.T, l *Lookup, key string) Result {
	t.Helper()
	res, p := l.Start(key)
	if p != nil {
		res = p.Wait(context.Background())
	}
	return res
}

func TestHTTPKeyEscaping(t *testing.T) {
	requests := make(chan string, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- r.URL.RequestURI()
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()

	inPath := newHTTPLookup(t, srv.URL+"/users/{key}/plan")
	if res := get(t, inPath, "a b/c?d"); !res.Found {
		t.Fatalf("result = %+v, want found", res)
	}
	if got, want := <-requests, "/users/a%20b%2Fc%3Fd/plan"; got != want {
		t.Errorf("request URI = %s, want %s", got, want)
	}

	inQuery := newHTTPLookup(t, srv.URL+"/users?id={key}")
	if res := get(t, inQuery, "a&b=c d"); !res.Found {
		t.Fatalf("result = %+v, want found", res)
	}
	if got, want := <-requests, "/users?id=a%26b%3Dc+d"; got != want {
		t.Errorf("request URI = %s, want %s", got, want)
	}
}

func TestHTTPAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/found":
			_, _ = w.Write([]byte(`{"n":12345678901234567890}`))
		case "/null":
			_, _ = w.Write([]byte(`null`))
		case "/invalid":
			_, _ = w.Write([]byte(`{"n":`))
		case "/huge":
			_, _ = w.Write([]byte(`"` + strings.Repeat("x", maxResponseBytes) + `"`))
		case "/forbidden":
			w.WriteHeader(http.StatusForbidden)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	l := newHTTPLookup(t, srv.URL+"/{key}")

	res := get(t, l, "found")
	if n, _ := Field(res.Value, "n"); !res.Found || n != json.Number("12345678901234567890") {
		t.Errorf("found: %+v, want n kept exact", res)
	}
	for _, key := range []string{"missing", "null"} {
		if res := get(t, l, key); res.Found || res.Err != nil {
			t.Errorf("%s: %+v, want a clean not found", key, res)
		}
	}
	for key, want := range map[string]string{
		"invalid":   "decoding response",
		"huge":      "body exceeds",
		"forbidden": "403",
	} {
		res := get(t, l, key)
		if res.Err == nil || !strings.Contains(res.Err.Error(), want) {
			t.Errorf("%s: error = %v, want one containing %q", key, res.Err, want)
		}
	}
}

// TestFileReloadInPlace checks that a file written in place, with a new
// size, is loaded again at the next poll.
func TestFileReloadInPlace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tiers.json")
		if err := os.WriteFile(path, []byte(`{"u-1":{"tier":"free"}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		spec := Spec{Name: "tiers", Key: "distinct_id", File: &FileSpec{Path: path}}
		spec.ApplyDefaults()
		l, err := New(spec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()

		tier := func() any {
			res, p := l.Start("u-1")
			if p != nil {
				t.Fatalf("a loaded file table returned a pending lookup")
			}
			v, _ := Field(res.Value, "tier")
			return v
		}
		if got := tier(); got != "free" {
			t.Fatalf("tier = %v, want free", got)
		}

		if err := os.WriteFile(path, []byte(`{"u-1":{"tier":"enterprise"}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(spec.File.PollInterval) - time.Second)
		synctest.Wait()
		if got := tier(); got != "free" {
			t.Errorf("before the poll: tier = %v, want free", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := tier(); got != "enterprise" {
			t.Errorf("after the poll: tier = %v, want enterprise", got)
		}
	})
}

func TestFileMissingAtStart(t *testing.T) {
	spec := Spec{Name: "tiers", Key: "k", File: &FileSpec{Path: filepath.Join(t.TempDir(), "none.json")}}
	spec.ApplyDefaults()
	_, err := New(spec, Options{})
	if err == nil || !strings.Contains(err.Error(), `creating lookup "tiers": opening lookup file`) {
		t.Errorf("error = %v, want one about opening the file", err)
	}
}

// TestHTTPTimeoutCachedBriefly checks that a request that times out is
// cached as a failure for the negative TTL only: no request is sent for the
// key until it ends, and one is sent after.
func TestHTTPTimeoutCachedBriefly(t *testing.T) {
	var calls atomic.Int64
	var slow atomic.Bool
	slow.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if slow.Load() {
			<-r.Context().Done()
			return
		}
		_, _ = w.Write([]byte(`{"tier":"pro"}`))
	}))
	defer srv.Close()

	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	spec := Spec{
		Name: "users", Key: "distinct_id", Deadline: Duration(time.Minute),
		Cache: &CacheSpec{TTL: Duration(time.Hour), NegativeTTL: Duration(10 * time.Second)},
		HTTP:  &HTTPSpec{URL: srv.URL + "/users/{key}", Timeout: Duration(50 * time.Millisecond)},
	}
	spec.ApplyDefaults()
	l, err := New(spec, Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	res := get(t, l, "u-1")
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Fatalf("first lookup: error = %v, want the request timeout", res.Err)
	}
	slow.Store(false)

	clock.Store(now.Add(9 * time.Second).UnixNano())
	res, p := l.Start("u-1")
	if p != nil {
		t.Fatalf("within the negative TTL: the lookup waited, want the cached failure")
	}
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("within the negative TTL: error = %v, want the cached timeout", res.Err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("requests within the negative TTL = %d, want 1", got)
	}

	clock.Store(now.Add(11 * time.Second).UnixNano())
	res = get(t, l, "u-1")
	if tier, _ := Field(res.Value, "tier"); !res.Found || tier != "pro" {
		t.Errorf("after the negative TTL: result = %+v, want tier pro", res)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("requests after the negative TTL = %d, want 2", got)
	}
}

// TestStaleServedWhileRefreshFails checks that an expired value is served
// while its refresh fails, and that the next refresh waits for the negative
// TTL.
func TestStaleServedWhileRefreshFails(t *testing.T) {
	var calls atomic.Int64
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"tier":"pro"}`))
	}))
	defer srv.Close()

	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	set := func(d time.Duration) { clock.Store(now.Add(d).UnixNano()) }
	spec := Spec{
		Name: "users", Key: "distinct_id",
		Cache: &CacheSpec{TTL: Duration(time.Minute), NegativeTTL: Duration(10 * time.Second)},
		HTTP:  &HTTPSpec{URL: srv.URL + "/users/{key}"},
	}
	spec.ApplyDefaults()
	metrics, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := New(spec, Options{Metrics: metrics, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	if res := get(t, l, "u-1"); !res.Found {
		t.Fatalf("first lookup: %+v, want found", res)
	}
	down.Store(true)

	stale := func(at time.Duration) {
		t.Helper()
		set(at)
		res, p := l.Start("u-1")
		if p != nil {
			t.Fatalf("at %s: the lookup waited, want the stale value at once", at)
		}
		if tier, _ := Field(res.Value, "tier"); !res.Found || res.Err != nil || tier != "pro" {
			t.Errorf("at %s: result = %+v, want the stale tier pro", at, res)
		}
	}
	stale(61 * time.Second) // starts a refresh, which fails
	waitFor(t, "the failed refresh", func() bool {
		return sampleCount(t, metrics.upstream.WithLabelValues("users", "error").(prometheus.Metric)) == 1
	})
	stale(65 * time.Second) // within the negative TTL of the failure: no refresh
	if got := calls.Load(); got != 2 {
		t.Errorf("requests within the negative TTL = %d, want 2", got)
	}

	down.Store(false)
	stale(72 * time.Second) // past it: one more refresh, which succeeds
	waitFor(t, "the second refresh", func() bool {
		return sampleCount(t, metrics.upstream.WithLabelValues("users", "found").(prometheus.Metric)) == 2
	})
	if got := calls.Load(); got != 3 {
		t.Errorf("requests = %d, want 3", got)
	}
	if got := sampleCount(t, metrics.stale.WithLabelValues("users")); got != 3 {
		t.Errorf("stale serves = %v, want 3", got)
	}
}

// waitFor polls cond until it holds. The limit guards against a hang; it is
// not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatalf("%s did not happen within 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sampleCount returns the value of a counter or the sample count of a
// histogram.
func sampleCount(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if h := out.GetHistogram(); h != nil {
		return float64(h.GetSampleCount())
	}
	return out.GetCounter().GetValue()
}

// TestHTTPConnectionBound checks that concurrent requests for many keys
// use at most max_connections connections at a time.
func TestHTTPConnectionBound(t *testing.T) {
	const keys = 20
	var open, peak atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := open.Add(1)
		defer open.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()

	spec := Spec{Name: "users", Key: "distinct_id", Deadline: Duration(time.Minute),
		HTTP: &HTTPSpec{URL: srv.URL + "/users/{key}", Timeout: Duration(time.Minute), MaxConnections: 2}}
	spec.ApplyDefaults()
	l, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	pendings := make([]*Pending, keys)
	for i := range pendings {
		_, pendings[i] = l.Start("u-" + strconv.Itoa(i))
	}
	waitFor(t, "two requests at the upstream", func() bool { return open.Load() == 2 })
	close(release)
	for i, p := range pendings {
		if res := p.Wait(context.Background()); !res.Found {
			t.Errorf("key %d: result = %+v, want found", i, res)
		}
	}
	if got := peak.Load(); got != 2 {
		t.Errorf("peak concurrent requests = %d, want 2", got)
	}
}
