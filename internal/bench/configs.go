package bench

import (
	"encoding/json"
	"maps"
	"strings"
)

// benchConfig is one measured configuration.
type benchConfig struct {
	name  string
	label string
	mode  string
	// env is added to the enricher's base environment.
	env map[string]string
	// latency adds a latency run at half the measured rate.
	latency bool
}

// Configuration names.
const (
	ConfigBare       = "a-bare"
	ConfigPostHog    = "b-posthog"
	ConfigNaive      = "c-naive"
	ConfigEnricher   = "d-enricher"
	ConfigClients    = "d-2-clients"
	ConfigGzip       = "e-gzip"
	ConfigSlowLookup = "e-slow-lookup"
)

func allConfigs() []benchConfig {
	return []benchConfig{
		{name: ConfigBare, label: "franz-go poll and discard", mode: ModeBare},
		{name: ConfigPostHog, label: "posthog-go alone, pre-built events", mode: ModePostHog},
		{name: ConfigNaive, label: "naive peer: auto-commit, map, posthog-go", mode: ModeNaive, latency: true},
		{name: ConfigEnricher, label: "enricher, rules, warm lookup", mode: ModeEnricher, latency: true},
		{name: ConfigClients, label: "enricher, 2 posthog-go clients", mode: ModeEnricher, latency: true,
			env: map[string]string{"ENRICHER_POSTHOG_CLIENTS": "2"}},
		{name: ConfigGzip, label: "enricher, gzip on", mode: ModeEnricher, latency: true,
			env: map[string]string{"ENRICHER_POSTHOG_GZIP": "true"}},
		{name: ConfigSlowLookup, label: "enricher, 10 ms lookup, 5% misses", mode: ModeEnricher, latency: true,
			env: map[string]string{"slow_lookup": "true"}},
	}
}

// selectConfigs returns the configurations named in only, or all of them.
func selectConfigs(only []string) []benchConfig {
	var out []benchConfig
	for _, c := range allConfigs() {
		if len(only) == 0 || contains(only, c.name) {
			out = append(out, c)
		}
	}
	return out
}

// enricherEnv returns the enricher's environment for a run: the bench's
// broker and capture server, no HTTP server, gzip off, and the rules. The
// rules set a static value, copy two record fields, fill a template, and
// read an organisation lookup whose 50 keys are cached after their first
// records. extra overrides any of it; its key slow_lookup adds a user
// lookup with a 10 ms source that misses on one record in 20.
func enricherEnv(b *bench, topic, group string, extra map[string]string) map[string]string {
	env := map[string]string{
		"ENRICHER_KAFKA_BROKERS":     strings.Join(b.brokers, ","),
		"ENRICHER_KAFKA_TOPICS":      topic,
		"ENRICHER_KAFKA_GROUP":       group,
		"ENRICHER_DLQ_TOPIC":         dlqTopic,
		"ENRICHER_POSTHOG_API_KEY":   apiKey,
		"ENRICHER_POSTHOG_HOST":      b.capture.URL,
		"ENRICHER_POSTHOG_GZIP":      "false",
		"ENRICHER_HTTP_ADDR":         "",
		"ENRICHER_LOG_LEVEL":         "warn",
		"ENRICHER_SHUTDOWN_TIMEOUT":  "20s",
		"ENRICHER_STATIC_PROPERTIES": "source=bench",
	}
	lookups := []map[string]any{{
		"name": "orgs", "key": "properties.org_id",
		"cache": map[string]any{"ttl": "1h"},
		"http":  map[string]any{"url": b.lookups.URL + "/orgs/{key}"},
	}}
	rules := []map[string]any{
		{"set": "team", "value": "platform"},
		{"set": "$ai_session_id", "record": "properties.conversation_id"},
		{"set": "$groups.organization", "record": "properties.org_id"},
		{"set": "$ai_span_name", "template": "{provider}: {model}"},
		{"set": "org_plan", "lookup": "orgs", "field": "plan"},
	}
	extra = maps.Clone(extra)
	if extra["slow_lookup"] == "true" {
		delete(extra, "slow_lookup")
		lookups = append(lookups, map[string]any{
			"name": "users", "key": "distinct_id",
			"cache": map[string]any{"ttl": "1h"},
			"http":  map[string]any{"url": b.lookups.URL + "/users/{key}"},
		})
		rules = append(rules, map[string]any{"set": "user_tier", "lookup": "users", "field": "tier"})
	}
	env["ENRICHER_LOOKUPS"] = mustJSON(lookups)
	env["ENRICHER_RULES"] = mustJSON(rules)
	maps.Copy(env, extra)
	return env
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
