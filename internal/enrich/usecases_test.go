package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/llm-enricher/enricher/internal/event"
)

// wantProps checks event properties by their text form, so that a JSON
// number 12 matches "12" whatever its Go type.
func wantProps(t *testing.T, ev *event.Event, want map[string]string) {
	t.Helper()
	for name, w := range want {
		v, ok := ev.Properties[name]
		if !ok {
			t.Errorf("property %s missing, want %s", name, w)
			continue
		}
		if got := fmt.Sprint(v); got != w {
			t.Errorf("property %s = %s, want %s", name, got, w)
		}
	}
}

func wantNoProps(t *testing.T, ev *event.Event, names ...string) {
	t.Helper()
	for _, name := range names {
		if v, ok := ev.Properties[name]; ok {
			t.Errorf("property %s = %v, want it unset", name, v)
		}
	}
}

// TestUseCaseUserPlan sets the subscription tier, monthly usage and
// rate-limited flag from a user API looked up by distinct id.
func TestUseCaseUserPlan(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/users/u-42":
			_, _ = w.Write([]byte(`{"subscription":{"tier":"enterprise"},"usage":{"month_tokens":123456},"rate_limited":false}`))
		case "/v1/users/u 7/x":
			_, _ = w.Write([]byte(`{"subscription":{"tier":"free"},"usage":{"month_tokens":9},"rate_limited":true}`))
		case "/v1/users/broken":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	cfg := Config{
		Lookups: jsonArray(t, map[string]any{
			"name": "users", "key": "distinct_id",
			"http": map[string]any{"url": srv.URL + "/v1/users/{key}"},
		}),
		Rules: jsonArray(t,
			map[string]any{"set": "subscription_tier", "lookup": "users", "field": "subscription.tier"},
			map[string]any{"set": "monthly_usage_tokens", "lookup": "users", "field": "usage.month_tokens"},
			map[string]any{"set": "rate_limited", "lookup": "users", "field": "rate_limited"},
		),
	}
	r := newRules(t, cfg, Options{})

	tests := []struct {
		user        string
		want        map[string]string
		wantPartial bool
	}{
		{user: "u-42", want: map[string]string{"subscription_tier": "enterprise", "monthly_usage_tokens": "123456", "rate_limited": "false"}},
		// The key is path-escaped, so a '/' in it stays inside one segment.
		{user: "u 7/x", want: map[string]string{"subscription_tier": "free", "monthly_usage_tokens": "9", "rate_limited": "true"}},
		{user: "unknown"},
		{user: "broken", wantPartial: true},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			rec := mapRecord{"distinct_id": tt.user}
			ev := newEvent(rec)
			enrichWait(t, r, ev, rec)

			wantProps(t, ev, tt.want)
			if tt.want == nil {
				wantNoProps(t, ev, "subscription_tier", "monthly_usage_tokens", "rate_limited")
			}
			if _, partial := ev.Properties[event.PropPartial]; partial != tt.wantPartial {
				t.Errorf("partial = %v, want %v", partial, tt.wantPartial)
			}
		})
	}
}

func produce(t *testing.T, cl *kgo.Client, topic, key string, value []byte) {
	t.Helper()
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatalf("producing %s: %v", key, err)
	}
}

// newPromptRegistry starts a Kafka cluster on 127.0.0.1 with a compacted
// topic and returns it with a producer client.
func newPromptRegistry(t *testing.T, topic string, opts ...kfake.Opt) (*kfake.Cluster, *kgo.Client) {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)

	compact := "compact"
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), 1, 1, map[string]*string{"cleanup.policy": &compact}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	return cluster, cl
}

func promptConfig(t *testing.T, topic, deadline string) Config {
	return Config{
		Lookups: jsonArray(t, map[string]any{
			"name": "prompts", "key": "properties.prompt_id", "deadline": deadline,
			"kafka": map[string]any{"topic": topic},
		}),
		Rules: jsonArray(t,
			map[string]any{"set": "prompt_id", "record": "properties.prompt_id"},
			map[string]any{"set": "prompt_version", "lookup": "prompts", "field": "version"},
			map[string]any{"set": "experiment_variant", "lookup": "prompts", "field": "experiment.variant"},
		),
	}
}

func promptRecord(id string) mapRecord {
	return mapRecord{"distinct_id": "u-42", "properties": map[string]any{"prompt_id": id}}
}

// TestUseCasePromptRegistry reads prompt versions and experiment variants
// from a compacted Kafka topic: values published before start, then a
// tombstone and an update.
func TestUseCasePromptRegistry(t *testing.T) {
	const topic = "prompt-registry"
	cluster, producer := newPromptRegistry(t, topic)
	produce(t, producer, topic, "welcome", []byte(`{"version":3,"experiment":{"variant":"b"}}`))
	produce(t, producer, topic, "summary", []byte(`{"version":1}`))
	produce(t, producer, topic, "retired", []byte(`{"version":9}`))

	r := newRules(t, promptConfig(t, topic, "10s"), Options{KafkaOpts: []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}})
	enrich := func(id string) *event.Event {
		rec := promptRecord(id)
		ev := newEvent(rec)
		enrichWait(t, r, ev, rec)
		return ev
	}

	// The first lookups wait until the table caught up with the topic.
	ev := enrich("welcome")
	wantProps(t, ev, map[string]string{"prompt_id": "welcome", "prompt_version": "3", "experiment_variant": "b"})
	wantNoProps(t, ev, event.PropPartial)
	ev = enrich("summary")
	wantProps(t, ev, map[string]string{"prompt_version": "1"})
	wantNoProps(t, ev, "experiment_variant", event.PropPartial)

	produce(t, producer, topic, "retired", nil)
	produce(t, producer, topic, "summary", []byte(`{not JSON`))
	produce(t, producer, topic, "welcome", []byte(`{"version":4,"experiment":{"variant":"c"}}`))
	eventually(t, "the update of welcome", func() bool {
		return fmt.Sprint(enrich("welcome").Properties["prompt_version"]) == "4"
	})
	ev = enrich("welcome")
	wantProps(t, ev, map[string]string{"prompt_version": "4", "experiment_variant": "c"})

	// A value that is not JSON is skipped, so the key keeps its value.
	ev = enrich("summary")
	wantProps(t, ev, map[string]string{"prompt_version": "1"})

	// The tombstone came before the update on the same partition, so it
	// is applied too. A deleted key is a clean miss, not a failure.
	ev = enrich("retired")
	wantProps(t, ev, map[string]string{"prompt_id": "retired"})
	wantNoProps(t, ev, "prompt_version", event.PropPartial)
}

// TestPromptRegistryBeforeCatchUp checks that a lookup waits for the table
// to catch up only up to its deadline, then sends the event as partial.
func TestPromptRegistryBeforeCatchUp(t *testing.T) {
	const topic = "prompt-registry"
	cluster, producer := newPromptRegistry(t, topic)
	produce(t, producer, topic, "welcome", []byte(`{"version":3}`))

	// Hold every ListOffsets request, so the table cannot learn where the
	// topic ends, until release is closed.
	release := make(chan struct{})
	cluster.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.SleepControl(func() { <-release })
		return nil, nil, false
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	r := newRules(t, promptConfig(t, topic, "50ms"), Options{KafkaOpts: []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}})
	rec := promptRecord("welcome")
	ev := newEvent(rec)
	enrichWait(t, r, ev, rec)
	wantNoProps(t, ev, "prompt_version")
	if ev.Properties[event.PropPartial] != true {
		t.Errorf("before catch-up: %s = %v, want true", event.PropPartial, ev.Properties[event.PropPartial])
	}

	close(release)
	eventually(t, "the table catching up", func() bool {
		ev := newEvent(rec)
		enrichWait(t, r, ev, rec)
		return fmt.Sprint(ev.Properties["prompt_version"]) == "3"
	})
}

// TestUseCaseRecordFields copies the conversation id, the feature and the
// session id from the record, and names the span with a template.
func TestUseCaseRecordFields(t *testing.T) {
	cfg := Config{Rules: jsonArray(t,
		map[string]any{"set": "conversation_id", "record": "properties.conversation_id"},
		map[string]any{"set": "feature", "record": "metadata.feature"},
		map[string]any{"set": "$session_id", "record": "metadata.session_id"},
		map[string]any{"set": "$ai_span_name", "template": "{metadata.feature}: {model}"},
		map[string]any{"set": "first_message", "record": "input.0.content"},
		map[string]any{"set": "missing", "record": "metadata.nothing"},
	)}
	r := newRules(t, cfg, Options{})

	rec := parseRecord(t, recordR)
	rec["metadata"] = map[string]any{"feature": "support-chat", "session_id": "s-77"}
	ev := newEvent(rec)
	done := startEnrich(r, ev, rec)
	if !isClosed(done) {
		t.Fatalf("done was not called before Enrich returned, though no lookup is needed")
	}
	wantProps(t, ev, map[string]string{
		"conversation_id": "cv-9",
		"feature":         "support-chat",
		"$session_id":     "s-77",
		"$ai_span_name":   "support-chat: gpt-4o-mini",
		"first_message":   "hi",
	})
	wantNoProps(t, ev, "missing", event.PropPartial)

	// A template with a missing placeholder sets nothing rather than
	// half-filled text.
	delete(rec, "model")
	ev = newEvent(rec)
	enrichWait(t, r, ev, rec)
	wantNoProps(t, ev, "$ai_span_name")
}

func TestRuleModesAndConditions(t *testing.T) {
	cfg := Config{Rules: jsonArray(t,
		map[string]any{"set": "$ai_span_name", "value": "default-span"},
		map[string]any{"set": "team", "value": "platform", "mode": "always"},
		map[string]any{"set": "cache_policy", "value": "anthropic-cache", "when": map[string]any{"record": "provider", "equals": "anthropic"}},
		map[string]any{"set": "big_call", "value": true, "when": map[string]any{"record": "input_tokens", "equals": 12.0}},
		map[string]any{"set": "distinct_id", "record": "metadata.user_id"},
		map[string]any{"set": "$groups.company", "record": "metadata.company"},
		map[string]any{"set": "$groups.project", "value": 7},
	)}
	r := newRules(t, cfg, Options{})

	rec := parseRecord(t, recordR)
	rec["metadata"] = map[string]any{"user_id": "u-other", "company": "acme"}
	ev := newEvent(rec)
	ev.Properties["$ai_span_name"] = "from-service"
	ev.Properties["team"] = "from-service"
	ev.Properties["$groups"] = json.RawMessage(`{"company":"from-service"}`)
	enrichWait(t, r, ev, rec)

	wantProps(t, ev, map[string]string{
		"$ai_span_name": "from-service", // if_absent keeps the service's value
		"team":          "platform",     // always overwrites
		"big_call":      "true",         // 12 equals 12.0
	})
	wantNoProps(t, ev, "cache_policy")
	if ev.DistinctID != "u-42" {
		t.Errorf("distinct id = %q, want u-42: if_absent keeps it", ev.DistinctID)
	}
	groups, ok := ev.Properties["$groups"].(map[string]any)
	if !ok {
		t.Fatalf("$groups = %#v, want a map", ev.Properties["$groups"])
	}
	if groups["company"] != "from-service" || groups["project"] != "7" {
		t.Errorf("$groups = %v, want company from-service and project 7", groups)
	}

	rec["provider"] = "anthropic"
	ev = newEvent(rec)
	ev.DistinctID = ""
	enrichWait(t, r, ev, rec)
	wantProps(t, ev, map[string]string{"cache_policy": "anthropic-cache", "$ai_span_name": "default-span"})
	if ev.DistinctID != "u-other" {
		t.Errorf("distinct id = %q, want u-other from the record", ev.DistinctID)
	}
}

// TestFailedLookupSkipsFallback checks that a fallback rule applies when the
// key is not found but not when the lookup failed, so that no invented
// default replaces a value that could not be fetched.
func TestFailedLookupSkipsFallback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/users/down" {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()

	cfg := Config{
		Lookups: jsonArray(t, map[string]any{
			"name": "users", "key": "distinct_id",
			"http": map[string]any{"url": srv.URL + "/users/{key}"},
		}),
		Rules: jsonArray(t,
			map[string]any{"set": "plan", "lookup": "users", "field": "plan"},
			map[string]any{"set": "plan", "value": "free"},
		),
	}
	r := newRules(t, cfg, Options{})

	for _, tt := range []struct {
		user        string
		wantPlan    bool
		wantPartial bool
	}{
		{user: "new-user", wantPlan: true},
		{user: "down", wantPartial: true},
	} {
		rec := mapRecord{"distinct_id": tt.user}
		ev := newEvent(rec)
		enrichWait(t, r, ev, rec)
		if _, ok := ev.Properties["plan"]; ok != tt.wantPlan {
			t.Errorf("%s: plan set = %v (%v), want %v", tt.user, ok, ev.Properties["plan"], tt.wantPlan)
		}
		if _, ok := ev.Properties[event.PropPartial]; ok != tt.wantPartial {
			t.Errorf("%s: partial = %v, want %v", tt.user, ok, tt.wantPartial)
		}
	}

	// A record without the key has nothing to look up: no request, no mark.
	rec := mapRecord{}
	ev := newEvent(rec)
	done := startEnrich(r, ev, rec)
	if !isClosed(done) {
		t.Errorf("an event without a lookup key waited")
	}
	wantProps(t, ev, map[string]string{"plan": "free"})
	wantNoProps(t, ev, event.PropPartial)
}

// writeVersion writes a file into a new directory and points the symbolic
// link at it, the way Kubernetes updates a mounted ConfigMap.
func writeVersion(t *testing.T, root, version, name, content string) {
	t.Helper()
	dir := filepath.Join(root, version)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(root, "..data")); err != nil {
		t.Fatal(err)
	}
}

// TestUseCaseCompanyGroups sets $groups.company from a file lookup, so that
// costs split by customer, and follows a ConfigMap-style update of the file.
func TestUseCaseCompanyGroups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		writeVersion(t, root, "v1", "companies.csv", "user_id,company,plan\nu-42,acme,enterprise\nu-7,globex,team\n")
		path := filepath.Join(root, "companies.csv")
		if err := os.Symlink(filepath.Join("..data", "companies.csv"), path); err != nil {
			t.Fatal(err)
		}

		cfg := Config{
			Lookups: jsonArray(t, map[string]any{
				"name": "companies", "key": "distinct_id",
				"file": map[string]any{"path": path, "key_field": "user_id", "poll_interval": "5s"},
			}),
			Rules: jsonArray(t,
				map[string]any{"set": "$groups.company", "lookup": "companies", "field": "company"},
				map[string]any{"set": "company_plan", "lookup": "companies", "field": "plan"},
			),
		}
		r, err := New(cfg, Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()

		company := func(user string) any {
			rec := mapRecord{"distinct_id": user}
			ev := newEvent(rec)
			done := startEnrich(r, ev, rec)
			if !isClosed(done) {
				t.Fatalf("a file lookup waited")
			}
			if _, ok := ev.Properties[event.PropPartial]; ok {
				t.Errorf("user %s: event marked partial", user)
			}
			groups, _ := ev.Properties["$groups"].(map[string]any)
			return groups["company"]
		}
		if got := company("u-42"); got != "acme" {
			t.Errorf("u-42: company = %v, want acme", got)
		}
		if got := company("u-9"); got != nil {
			t.Errorf("u-9: company = %v, want none before the update", got)
		}

		writeVersion(t, root, "v2", "companies.csv", "user_id,company,plan\nu-42,acme-holding,enterprise\nu-9,initech,team\n")
		time.Sleep(6 * time.Second)
		synctest.Wait()

		if got := company("u-42"); got != "acme-holding" {
			t.Errorf("after reload: u-42 company = %v, want acme-holding", got)
		}
		if got := company("u-9"); got != "initech" {
			t.Errorf("after reload: u-9 company = %v, want initech", got)
		}
		if got := company("u-7"); got != nil {
			t.Errorf("after reload: u-7 company = %v, want none", got)
		}

		// A broken update keeps the loaded table.
		writeVersion(t, root, "v3", "companies.csv", "user_id,company\nu-42,\"unterminated\n")
		time.Sleep(6 * time.Second)
		synctest.Wait()
		if got := company("u-42"); got != "acme-holding" {
			t.Errorf("after a broken update: u-42 company = %v, want acme-holding", got)
		}
	})
}
