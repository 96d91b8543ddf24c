package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// startLogged runs an enricher with the harness environment plus extra,
// logging at debug level into the returned log.
func startLogged(h *harness, extra map[string]string) *lockedBuffer {
	h.t.Helper()
	cfg := h.config(extra)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter(h.t)), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- Run(ctx, cfg, log, io.Discard) }()
	h.t.Cleanup(func() { in.stop(h.t) })
	return logs
}

// llmCall returns a version 1 record for user, with the feature, session
// and prompt that the use cases read.
func llmCall(t *testing.T, id, user, promptID string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "timestamp": "2026-05-01T10:00:00Z", "distinct_id": user,
		"provider": "anthropic", "model": "claude-sonnet-4",
		"input":          []any{map[string]any{"role": "user", "content": "hi"}},
		"output_choices": []any{map[string]any{"role": "assistant", "content": "hello"}},
		"input_tokens":   12, "output_tokens": 5,
		"metadata": map[string]any{
			"feature": "support-chat", "session_id": "s-" + user, "conversation_id": "cv-" + id,
		},
		"properties": map[string]any{"prompt_id": promptID},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventsByUser returns the delivered events, keyed by distinct id.
func eventsByUser(capture *capturetest.Server) map[string][]capturetest.Event {
	out := make(map[string][]capturetest.Event)
	for _, ev := range capture.Events() {
		out[ev.DistinctID] = append(out[ev.DistinctID], ev)
	}
	return out
}

// wantProp checks a property of a delivered event by its JSON text.
func wantProp(t *testing.T, ev capturetest.Event, name, want string) {
	t.Helper()
	got, ok := ev.Properties[name]
	if !ok {
		t.Errorf("event %s of %s: property %s missing, want %s", ev.UUID, ev.DistinctID, name, want)
		return
	}
	if string(got) != want {
		t.Errorf("event %s of %s: property %s = %s, want %s", ev.UUID, ev.DistinctID, name, got, want)
	}
}

func wantNoProp(t *testing.T, ev capturetest.Event, names ...string) {
	t.Helper()
	for _, name := range names {
		if got, ok := ev.Properties[name]; ok {
			t.Errorf("event %s of %s: property %s = %s, want it unset", ev.UUID, ev.DistinctID, name, got)
		}
	}
}

// userAPI is a user service that the users lookup calls. It requires the
// bearer token and counts requests per path.
type userAPI struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string]int
}

func newUserAPI(t *testing.T, token string) *userAPI {
	api := &userAPI{requests: make(map[string]int)}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		api.requests[r.URL.Path]++
		api.mu.Unlock()
		if r.Header.Get("Authorization") != token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/users/u-1":
			_, _ = w.Write([]byte(`{"plan":{"tier":"enterprise"},"usage":{"month_tokens":123456},"rate_limited":false,"company":{"id":"acme"}}`))
		case "/v1/users/u-2":
			_, _ = w.Write([]byte(`{"plan":{"tier":"free"},"usage":{"month_tokens":99},"rate_limited":true,"company":{"id":"globex"}}`))
		case "/v1/users/u-down":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(api.Close)
	return api
}

func (a *userAPI) counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.requests))
	for k, v := range a.requests {
		out[k] = v
	}
	return out
}

// TestEnrichUserPlanEndToEnd runs the service with the user-plan lookup
// over HTTP and the record-copy, template and group rules, and checks the
// events that reach the capture server, the lookup metrics and the log.
func TestEnrichUserPlanEndToEnd(t *testing.T) {
	const token = "Bearer s3cr3t-lookup-token"
	t.Setenv("USERS_API_TOKEN", token)
	api := newUserAPI(t, token)

	k := kafkatest.New(t, 2, topic, dlqT)
	h := newHarness(t, k)
	users := []string{"u-1", "u-2", "u-new", "u-down"}
	var values [][]byte
	for round := range 3 {
		for _, u := range users {
			values = append(values, llmCall(t, fmt.Sprintf("%s-%d", u, round), u, "welcome"))
		}
	}
	spread(k, 2, values)

	addr := freeAddr(t)
	logs := startLogged(h, map[string]string{
		"ENRICHER_HTTP_ADDR":         addr,
		"ENRICHER_STATIC_PROPERTIES": "team=support",
		"ENRICHER_LOOKUPS": `[{"name":"users","key":"distinct_id","deadline":"5s",
			"cache":{"ttl":"10m","negative_ttl":"1m"},
			"http":{"url":"` + api.URL + `/v1/users/{key}","timeout":"2s",
			        "headers":{"Authorization":{"env":"USERS_API_TOKEN"}}}}]`,
		"ENRICHER_RULES": `[
			{"set":"subscription_tier","lookup":"users","field":"plan.tier"},
			{"set":"monthly_usage_tokens","lookup":"users","field":"usage.month_tokens"},
			{"set":"rate_limited","lookup":"users","field":"rate_limited"},
			{"set":"$groups.company","lookup":"users","field":"company.id"},
			{"set":"conversation_id","record":"metadata.conversation_id"},
			{"set":"feature","record":"metadata.feature"},
			{"set":"$session_id","record":"metadata.session_id"},
			{"set":"$ai_span_name","template":"{metadata.feature}: {model}"},
			{"set":"team","value":"support-llm","when":{"record":"provider","equals":"anthropic"},"mode":"always"}]`,
	})

	kafkatest.Eventually(t, 30*time.Second, "12 events delivered", func() bool { return len(h.capture.UUIDs()) == 12 })
	kafkatest.Eventually(t, 10*time.Second, "offsets committed to the end", func() bool { return sum(k.Committed(group, topic)) == 12 })

	byUser := eventsByUser(h.capture)
	for _, u := range users {
		if got := len(byUser[u]); got != 3 {
			t.Errorf("user %s: %d events, want 3", u, got)
		}
	}
	for _, ev := range h.capture.Events() {
		// Rules that read the record apply to every event.
		wantProp(t, ev, "feature", `"support-chat"`)
		wantProp(t, ev, "$session_id", `"s-`+ev.DistinctID+`"`)
		wantProp(t, ev, "$ai_span_name", `"support-chat: claude-sonnet-4"`)
		wantProp(t, ev, "team", `"support-llm"`)
		var conversation string
		if !ev.Prop("conversation_id", &conversation) || !strings.HasPrefix(conversation, "cv-"+ev.DistinctID+"-") {
			t.Errorf("event of %s: conversation_id = %q, want the record's", ev.DistinctID, conversation)
		}

		switch ev.DistinctID {
		case "u-1":
			wantProp(t, ev, "subscription_tier", `"enterprise"`)
			wantProp(t, ev, "monthly_usage_tokens", `123456`)
			wantProp(t, ev, "rate_limited", `false`)
			wantProp(t, ev, "$groups", `{"company":"acme"}`)
			wantNoProp(t, ev, event.PropPartial)
		case "u-2":
			wantProp(t, ev, "subscription_tier", `"free"`)
			wantProp(t, ev, "rate_limited", `true`)
			wantProp(t, ev, "$groups", `{"company":"globex"}`)
			wantNoProp(t, ev, event.PropPartial)
		case "u-new":
			// Not found: nothing is set, and nothing is missing either.
			wantNoProp(t, ev, "subscription_tier", "monthly_usage_tokens", "rate_limited", "$groups", event.PropPartial)
		case "u-down":
			// Failed: nothing is invented, and the event is marked partial.
			wantNoProp(t, ev, "subscription_tier", "monthly_usage_tokens", "rate_limited", "$groups")
			wantProp(t, ev, event.PropPartial, `true`)
		}
	}

	// Found values, not-found results and failures are cached, so each
	// user is requested once for its three records.
	for path, n := range api.counts() {
		if n != 1 {
			t.Errorf("requests for %s = %d, want 1", path, n)
		}
	}
	if got := len(api.counts()); got != len(users) {
		t.Errorf("users requested = %d, want %d", got, len(users))
	}

	metrics := scrape(t, "http://"+addr+"/metrics")
	value := func(series string) float64 {
		t.Helper()
		for line := range strings.Lines(metrics) {
			if rest, ok := strings.CutPrefix(line, series+" "); ok {
				v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				if err != nil {
					t.Fatalf("/metrics line %q: %v", line, err)
				}
				return v
			}
		}
		t.Errorf("/metrics has no series %s", series)
		return -1
	}
	// Each record counts once: as a hit, as a miss, or as an error when it
	// meets the cached failure of u-down. Records of one user that arrive
	// while its request is in flight wait for it as misses, so the split
	// depends on timing.
	hits := value(`enricher_lookup_hits_total{lookup="users"}`)
	misses := value(`enricher_lookup_misses_total{lookup="users"}`)
	if hits+misses < 10 || hits+misses > 12 || misses < 4 {
		t.Errorf("lookup hits = %v and misses = %v, want 10 to 12 in all and at least 4 misses", hits, misses)
	}
	for series, want := range map[string]float64{
		`enricher_lookup_errors_total{lookup="users"}`:                                       3,
		`enricher_lookup_stale_serves_total{lookup="users"}`:                                 0,
		`enricher_lookup_upstream_duration_seconds_count{lookup="users",result="found"}`:     2,
		`enricher_lookup_upstream_duration_seconds_count{lookup="users",result="not_found"}`: 1,
		`enricher_lookup_upstream_duration_seconds_count{lookup="users",result="error"}`:     1,
	} {
		if got := value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	for name, text := range map[string]string{"log": logs.String(), "/metrics": metrics} {
		if strings.Contains(text, "s3cr3t") {
			t.Errorf("the %s contains the lookup header secret", name)
		}
	}
	if !strings.Contains(logs.String(), "500 Internal Server Error") {
		t.Errorf("the log does not report the failed lookup request")
	}
}

// scrape returns the body of a GET request.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return string(body)
}

// TestEnrichPromptRegistryEndToEnd runs the service with a prompt registry
// in a compacted Kafka topic on a broker that requires SASL, so the table
// loads only if the lookup uses the consumer's SASL settings. It then
// publishes an update and a tombstone while the service runs.
func TestEnrichPromptRegistryEndToEnd(t *testing.T) {
	const (
		registry = "prompt-registry"
		user     = "enricher"
		password = "registry-test-password"
	)
	k := kafkatest.NewWith(t, []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", user, password),
	}, 1, topic, dlqT)
	admin := k.Client(kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha256Mechanism()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	compact := "compact"
	created, err := kadm.NewClient(admin).CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, registry)
	if err == nil {
		err = created.Err
	}
	if err != nil {
		t.Fatalf("creating %s: %v", registry, err)
	}
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		if err := admin.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("producing: %v", err)
		}
	}
	prompt := func(id, value string) *kgo.Record {
		r := &kgo.Record{Topic: registry, Key: []byte(id)}
		if value != "" {
			r.Value = []byte(value)
		}
		return r
	}
	call := func(id, promptID string) *kgo.Record {
		return &kgo.Record{Topic: topic, Value: llmCall(t, id, "u-1", promptID)}
	}
	produce(
		prompt("welcome", `{"version":3,"experiment":{"variant":"b"}}`),
		prompt("summary", `{"version":1}`),
	)
	produce(call("c-1", "welcome"), call("c-2", "summary"), call("c-3", "unknown"))

	h := newHarness(t, k)
	h.start(map[string]string{
		"ENRICHER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
		"ENRICHER_KAFKA_SASL_USERNAME":  user,
		"ENRICHER_KAFKA_SASL_PASSWORD":  password,
		"ENRICHER_LOOKUPS":              `[{"name":"prompts","key":"properties.prompt_id","deadline":"10s","kafka":{"topic":"` + registry + `"}}]`,
		"ENRICHER_RULES": `[
			{"set":"prompt_version","lookup":"prompts","field":"version"},
			{"set":"experiment_variant","lookup":"prompts","field":"experiment.variant"}]`,
	})

	kafkatest.Eventually(t, 30*time.Second, "3 events delivered", func() bool { return len(h.capture.UUIDs()) == 3 })
	byID := func() map[string]capturetest.Event {
		out := make(map[string]capturetest.Event)
		for _, ev := range h.capture.Events() {
			out[ev.UUID] = ev
		}
		return out
	}
	uuid := func(id string) string { return event.ID(id, event.Source{}) }
	events := byID()
	welcome := events[uuid("c-1")]
	wantProp(t, welcome, "prompt_id", `"welcome"`)
	wantProp(t, welcome, "prompt_version", `3`)
	wantProp(t, welcome, "experiment_variant", `"b"`)
	wantNoProp(t, welcome, event.PropPartial)
	summary := events[uuid("c-2")]
	wantProp(t, summary, "prompt_version", `1`)
	wantNoProp(t, summary, "experiment_variant", event.PropPartial)
	wantNoProp(t, events[uuid("c-3")], "prompt_version", "experiment_variant", event.PropPartial)

	// A tombstone deletes summary, then welcome moves to version 4. Both
	// are on one partition, so once version 4 is seen the tombstone has
	// been applied too.
	produce(prompt("summary", ""), prompt("welcome", `{"version":4,"experiment":{"variant":"c"}}`))
	next := 0
	kafkatest.Eventually(t, 30*time.Second, "an event with prompt version 4", func() bool {
		next++
		id := fmt.Sprintf("w-%d", next)
		produce(call(id, "welcome"))
		kafkatest.Eventually(t, 20*time.Second, "event "+id+" delivered", func() bool {
			_, ok := byID()[uuid(id)]
			return ok
		})
		var version int
		byID()[uuid(id)].Prop("prompt_version", &version)
		return version == 4
	})

	produce(call("c-4", "summary"))
	kafkatest.Eventually(t, 20*time.Second, "event c-4 delivered", func() bool {
		_, ok := byID()[uuid("c-4")]
		return ok
	})
	deleted := byID()[uuid("c-4")]
	wantProp(t, deleted, "prompt_id", `"summary"`)
	wantNoProp(t, deleted, "prompt_version", event.PropPartial)
}

// TestEnrichSlowLookupEndToEnd holds the upstream request of one user
// until the test ends. The records behind it on the same partition are
// delivered while it waits, and its own event goes out at the 10 s
// deadline, marked partial, while the request is still held.
func TestEnrichSlowLookupEndToEnd(t *testing.T) {
	var held atomic.Int64
	release := make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/users/u-slow" {
			held.Add(1)
			defer held.Add(-1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write([]byte(`{"plan":{"tier":"team"}}`))
	}))
	defer api.Close()
	defer close(release)

	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	values := [][]byte{llmCall(t, "slow", "u-slow", "welcome")}
	for i := range 10 {
		values = append(values, llmCall(t, fmt.Sprintf("fast-%d", i), fmt.Sprintf("u-%d", i), "welcome"))
	}
	k.ProduceValues(topic, values...)
	h.start(map[string]string{
		"ENRICHER_LOOKUPS": `[{"name":"users","key":"distinct_id","deadline":"10s",
			"http":{"url":"` + api.URL + `/v1/users/{key}","timeout":"1m"}}]`,
		"ENRICHER_RULES": `[{"set":"subscription_tier","lookup":"users","field":"plan.tier"}]`,
	})

	kafkatest.Eventually(t, 30*time.Second, "10 events behind the slow one delivered", func() bool {
		n := 0
		for _, ev := range h.capture.Events() {
			if ev.DistinctID != "u-slow" {
				n++
			}
		}
		return n == 10
	})
	kafkatest.Eventually(t, 10*time.Second, "the slow request held at the upstream", func() bool { return held.Load() == 1 })
	// The deadline is far off, so the other events went out while the
	// slow one waited, not after it.
	if _, ok := h.capture.UUIDs()[event.ID("slow", event.Source{})]; ok {
		t.Errorf("the slow event went out before the events behind it, want it to wait for its deadline")
	}
	kafkatest.Eventually(t, 30*time.Second, "the slow event delivered", func() bool { return len(h.capture.UUIDs()) == 11 })
	if _, ok := h.capture.UUIDs()[event.ID("slow", event.Source{})]; !ok {
		t.Fatalf("the slow event was delivered under another uuid, so the order check above proves nothing")
	}
	if got := held.Load(); got != 1 {
		t.Errorf("held upstream requests = %d after the slow event went out, want 1: it must not wait for the upstream", got)
	}
	kafkatest.Eventually(t, 10*time.Second, "offsets committed to the end", func() bool { return k.Committed(group, topic)[0] == 11 })

	for _, ev := range h.capture.Events() {
		if ev.DistinctID == "u-slow" {
			wantNoProp(t, ev, "subscription_tier")
			wantProp(t, ev, event.PropPartial, `true`)
			continue
		}
		wantProp(t, ev, "subscription_tier", `"team"`)
		wantNoProp(t, ev, event.PropPartial)
	}
}
