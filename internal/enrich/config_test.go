package enrich

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
)

func TestConfigValidateErrors(t *testing.T) {
	httpLookup := `{"name":"users","key":"distinct_id","http":{"url":"http://127.0.0.1:1/u/{key}"}}`
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{
			name: "rules invalid JSON",
			cfg:  Config{Rules: `[{"set":"plan",`},
			want: []string{"ENRICHER_RULES: invalid JSON"},
		},
		{
			name: "lookups invalid JSON",
			cfg:  Config{Lookups: `{"name":"users"}`},
			want: []string{"ENRICHER_LOOKUPS: invalid JSON"},
		},
		{
			name: "redact patterns invalid JSON",
			cfg:  Config{RedactPatterns: `["a"`},
			want: []string{"ENRICHER_REDACT_PATTERNS: invalid JSON"},
		},
		{
			name: "unknown lookup",
			cfg: Config{
				Lookups: "[" + httpLookup + "]",
				Rules:   `[{"set":"a","value":1},{"set":"b","value":2},{"set":"tier","lookup":"tiers","field":"tier"}]`,
			},
			want: []string{`ENRICHER_RULES[2].lookup: unknown lookup "tiers"`, `defines "users"`},
		},
		{
			name: "unknown lookup in template",
			cfg:  Config{Rules: `[{"set":"$ai_span_name","template":"{feature}: {tiers:name}"}]`},
			want: []string{`ENRICHER_RULES[0].template: unknown lookup "tiers"`},
		},
		{
			name: "empty key path",
			cfg:  Config{Lookups: `[{"name":"users","key":"","http":{"url":"http://127.0.0.1:1/u/{key}"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].key: missing"},
		},
		{
			name: "unknown field",
			cfg:  Config{Rules: `[{"set":"plan","looku":"users"}]`},
			want: []string{"ENRICHER_RULES[0]: invalid element", `unknown field "looku"`},
		},
		{
			name: "two sources",
			cfg:  Config{Rules: `[{"set":"plan","value":"pro","record":"plan"}]`},
			want: []string{`ENRICHER_RULES[0]: set exactly one of "value", "record", "lookup" and "template", got 2`},
		},
		{
			name: "missing target",
			cfg:  Config{Rules: `[{"value":"pro"}]`},
			want: []string{"ENRICHER_RULES[0].set: missing"},
		},
		{
			name: "bad mode",
			cfg:  Config{Rules: `[{"set":"plan","value":"pro","mode":"sometimes"}]`},
			want: []string{`ENRICHER_RULES[0].mode: unknown mode "sometimes"`},
		},
		{
			name: "distinct id from a lookup",
			cfg:  Config{Lookups: "[" + httpLookup + "]", Rules: `[{"set":"distinct_id","lookup":"users","field":"id"}]`},
			want: []string{"ENRICHER_RULES[0].set: the distinct id must not come from a lookup"},
		},
		{
			name: "bad template",
			cfg:  Config{Rules: `[{"set":"$ai_span_name","template":"{feature: {model}"}]`},
			want: []string{"ENRICHER_RULES[0].template: invalid template"},
		},
		{
			name: "condition without value",
			cfg:  Config{Rules: `[{"set":"plan","value":"pro","when":{"record":"provider"}}]`},
			want: []string{"ENRICHER_RULES[0].when.equals: missing"},
		},
		{
			name: "privacy rule with a target",
			cfg:  Config{Rules: `[{"privacy":true,"set":"plan"}]`},
			want: []string{"ENRICHER_RULES[0].privacy: a privacy rule takes no setting"},
		},
		{
			name: "duplicate lookup name",
			cfg:  Config{Lookups: "[" + httpLookup + "," + httpLookup + "]"},
			want: []string{`ENRICHER_LOOKUPS[1].name: duplicate name "users"`},
		},
		{
			name: "two sources in a lookup",
			cfg:  Config{Lookups: `[{"name":"t","key":"k","kafka":{"topic":"t"},"file":{"path":"t.json"}}]`},
			want: []string{`ENRICHER_LOOKUPS[0]: set exactly one source`},
		},
		{
			name: "cache on a file lookup",
			cfg:  Config{Lookups: `[{"name":"t","key":"k","file":{"path":"t.json"},"cache":{"ttl":"1m"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].cache: only an http lookup has a cache"},
		},
		{
			name: "URL without key",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","http":{"url":"http://127.0.0.1:1/users"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].http.url: invalid URL template", "{key}"},
		},
		{
			name: "duration as a number",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","deadline":5,"http":{"url":"http://127.0.0.1:1/u/{key}"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0]: invalid element", "parsing duration"},
		},
		{
			name: "negative TTL above TTL",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","cache":{"ttl":"1s","negative_ttl":"1m"},"http":{"url":"http://127.0.0.1:1/u/{key}"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].cache.negative_ttl: must be positive and at most ttl"},
		},
		{
			name: "header from unset variable",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","http":{"url":"http://127.0.0.1:1/u/{key}","headers":{"Authorization":{"env":"ENRICHER_TEST_UNSET_TOKEN"}}}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].http.headers.Authorization: environment variable ENRICHER_TEST_UNSET_TOKEN is unset or empty"},
		},
		{
			name: "inline header value",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","http":{"url":"http://127.0.0.1:1/u/{key}","headers":{"Authorization":"Bearer abc"}}}]`},
			want: []string{"ENRICHER_LOOKUPS[0]: invalid element"},
		},
		{
			name: "rule sets the LLM input",
			cfg:  Config{Rules: `[{"set":"$ai_input","record":"metadata.raw_prompt"}]`},
			want: []string{`ENRICHER_RULES[0].set: "$ai_input" comes from the record only`},
		},
		{
			name: "credentials in the URL",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","http":{"url":"https://svc:s3cret@users.internal/u/{key}"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].http.url: invalid URL template: it contains credentials"},
		},
		{
			name: "credentials in a URL without key",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","http":{"url":"https://svc:s3cret@users.internal/u"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].http.url: invalid URL template: it contains credentials"},
		},
		{
			name: "negative connection bound",
			cfg:  Config{Lookups: `[{"name":"users","key":"k","http":{"url":"http://127.0.0.1:1/u/{key}","max_connections":-1}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].http.max_connections: must be positive, got -1"},
		},
		{
			name: "bad regular expression",
			cfg:  Config{RedactPatterns: `["sk-[a-z]+", "("]`},
			want: []string{"ENRICHER_REDACT_PATTERNS[1]: invalid regular expression"},
		},
		{
			name: "file format unknown",
			cfg:  Config{Lookups: `[{"name":"t","key":"k","file":{"path":"t.txt"}}]`},
			want: []string{"ENRICHER_LOOKUPS[0].file.format: missing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			errorContains(t, err, tt.want...)
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q contains the password from the URL", err)
			}

			_, newErr := New(tt.cfg, Options{})
			if newErr == nil || newErr.Error() != err.Error() {
				t.Errorf("New error = %v, want the Validate error", newErr)
			}
		})
	}
}

func TestConfigValidateReportsAll(t *testing.T) {
	cfg := Config{
		Lookups:        `[{"name":"","key":"","http":{"url":"http://127.0.0.1:1/u"}}]`,
		Rules:          `[{"set":"plan","lookup":"tiers"},{"set":"x"}]`,
		RedactPatterns: `["("]`,
	}
	err := cfg.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v is not a joined error", err)
	}
	if got := len(joined.Unwrap()); got < 6 {
		t.Errorf("got %d problems, want at least 6: %v", got, err)
	}
	errorContains(t, err,
		"ENRICHER_LOOKUPS[0].name", "ENRICHER_LOOKUPS[0].key", "ENRICHER_LOOKUPS[0].http.url",
		"ENRICHER_RULES[0].lookup", "ENRICHER_RULES[1]: set exactly one", "ENRICHER_REDACT_PATTERNS[0]")
}

func TestConfigValidateAcceptsEmpty(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

// TestHeaderValueKeptWhole checks that a header value with separators in it
// (colons, commas, semicolons, equals signs) reaches the upstream whole, and
// that the secret never appears in the logs, even when requests fail.
func TestHeaderValueKeptWhole(t *testing.T) {
	const token = "Bearer:abc,x-origin:https://h:443;q=1"
	t.Setenv("ENRICHER_TEST_USERS_TOKEN", token)
	secretFile := filepath.Join(t.TempDir(), "origin")
	if err := os.WriteFile(secretFile, []byte("https://h:443,other\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	var logs bytes.Buffer
	cfg := Config{
		Lookups: jsonArray(t, map[string]any{
			"name": "users", "key": "distinct_id",
			"http": map[string]any{
				"url": srv.URL + "/users/{key}",
				"headers": map[string]any{
					"Authorization": map[string]any{"env": "ENRICHER_TEST_USERS_TOKEN"},
					"X-Origin":      map[string]any{"file": secretFile},
				},
			},
		}),
		Rules: jsonArray(t, map[string]any{"set": "plan", "lookup": "users", "field": "plan"}),
	}
	r := newRules(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	rec := mapRecord{"distinct_id": "u-42"}
	ev := newEvent(rec)
	enrichWait(t, r, ev, rec)
	r.Close()

	h := <-got
	if v := h.Values("Authorization"); len(v) != 1 || v[0] != token {
		t.Errorf("Authorization = %q, want [%q]", v, token)
	}
	if v := h.Get("X-Origin"); v != "https://h:443,other" {
		t.Errorf("X-Origin = %q, want the file content without its newline", v)
	}
	if !strings.Contains(logs.String(), "503") {
		t.Errorf("logs do not report the failed request: %s", logs.String())
	}
	for _, secret := range []string{"abc", "x-origin:https", "h:443,other"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain the secret part %q: %s", secret, logs.String())
		}
	}
}
func TestConfigFromEnvironment(t *testing.T) {
	var cfg Config
	err := env.ParseWithOptions(&cfg, env.Options{Prefix: "ENRICHER_", Environment: map[string]string{
		EnvRules:          `[{"set":"team","value":"platform"}]`,
		EnvLookups:        `[]`,
		EnvPrivacyMode:    "true",
		EnvRedactPatterns: `["sk-[a-z]+"]`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Rules == "" || cfg.Lookups != "[]" || !cfg.PrivacyMode || cfg.RedactPatterns == "" {
		t.Errorf("config = %+v, want every variable read", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestHeaderFromEmptyVariable checks that a header whose variable is set
// to the empty string fails validation like an unset one, naming the
// header and the variable.
func TestHeaderFromEmptyVariable(t *testing.T) {
	t.Setenv("ENRICHER_TEST_EMPTY_TOKEN", "")
	cfg := Config{Lookups: `[{"name":"users","key":"k","http":{"url":"http://127.0.0.1:1/u/{key}",` +
		`"headers":{"Authorization":{"env":"ENRICHER_TEST_EMPTY_TOKEN"}}}}]`}
	errorContains(t, cfg.Validate(),
		"ENRICHER_LOOKUPS[0].http.headers.Authorization: environment variable ENRICHER_TEST_EMPTY_TOKEN is unset or empty")
}
