package enrich

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPrivacyMode(t *testing.T) {
	r := newRules(t, Config{PrivacyMode: true}, Options{})
	rec := parseRecord(t, recordR)
	ev := newEvent(rec)
	enrichWait(t, r, ev, rec)

	for _, name := range []string{"$ai_input", "$ai_output_choices"} {
		v, ok := ev.Properties[name]
		if !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", name, v, ok)
		}
	}
	if ev.Properties["$ai_model"] != "gpt-4o-mini" {
		t.Errorf("$ai_model = %v, want it kept", ev.Properties["$ai_model"])
	}
}

func TestPrivacyRuleWithCondition(t *testing.T) {
	cfg := Config{Rules: jsonArray(t, map[string]any{"privacy": true, "when": map[string]any{"record": "metadata.sensitive", "equals": true}})}
	r := newRules(t, cfg, Options{})

	rec := parseRecord(t, recordR)
	ev := newEvent(rec)
	enrichWait(t, r, ev, rec)
	if ev.Properties["$ai_input"] == nil {
		t.Errorf("$ai_input nulled for a record without the condition")
	}

	rec["metadata"] = map[string]any{"sensitive": true}
	ev = newEvent(rec)
	enrichWait(t, r, ev, rec)
	if ev.Properties["$ai_input"] != nil || ev.Properties["$ai_output_choices"] != nil {
		t.Errorf("$ai_input = %v, $ai_output_choices = %v, want both null", ev.Properties["$ai_input"], ev.Properties["$ai_output_choices"])
	}
}

func TestRedactPatterns(t *testing.T) {
	patterns := `["sk-[A-Za-z0-9]{8,}", "\\b\\d{3}-\\d{2}-\\d{4}\\b"]`
	r := newRules(t, Config{RedactPatterns: patterns}, Options{})

	tests := []struct {
		name   string
		input  any
		output any
		want   []string // substrings of the encoded result
		absent []string
	}{
		{
			name: "raw JSON with string content and text parts",
			input: json.RawMessage(`[{"role":"system","content":"key sk-ABCDEFGH1234 <b>"},` +
				`{"role":"user","content":[{"type":"text","text":"my ssn is 123-45-6789"},{"type":"image","image":"sk-notatextpart1"}]}]`),
			output: json.RawMessage(`[{"role":"assistant","content":"ok sk-ZZZZZZZZZZ"}]`),
			want:   []string{`"key [REDACTED] <b>"`, `"my ssn is [REDACTED]"`, `"image":"sk-notatextpart1"`, `"ok [REDACTED]"`},
			absent: []string{"sk-ABCDEFGH1234", "123-45-6789", "sk-ZZZZZZZZZZ"},
		},
		{
			name:   "decoded values",
			input:  []any{map[string]any{"role": "user", "content": "call 123-45-6789"}, "plain sk-ABCDEFGH1234"},
			output: []any{map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "output_text", "text": "sk-12345678ab"}}}},
			want:   []string{`"call [REDACTED]"`, `"plain [REDACTED]"`, `"text":"[REDACTED]"`},
			absent: []string{"123-45-6789", "sk-ABCDEFGH1234", "sk-12345678ab"},
		},
		{
			name:  "a string value",
			input: "token sk-ABCDEFGH1234",
			want:  []string{`"token [REDACTED]"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvent(mapRecord{})
			ev.Properties["$ai_input"] = tt.input
			ev.Properties["$ai_output_choices"] = tt.output
			enrichWait(t, r, ev, mapRecord{})

			encoded, err := json.Marshal(map[string]any{"in": ev.Properties["$ai_input"], "out": ev.Properties["$ai_output_choices"]})
			if err != nil {
				t.Fatalf("encoding the redacted properties: %v", err)
			}
			got := strings.ReplaceAll(string(encoded), `\u003c`, "<")
			got = strings.ReplaceAll(got, `\u003e`, ">")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("result %s does not contain %s", got, w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("result %s still contains %s", got, a)
				}
			}
		})
	}
}

// TestRedactLeavesUnmatchedRawJSON checks that raw JSON without a match
// keeps its exact bytes, because it is only encoded again after a match.
func TestRedactLeavesUnmatchedRawJSON(t *testing.T) {
	r := newRules(t, Config{RedactPatterns: `["sk-[A-Za-z0-9]{8,}"]`}, Options{})
	raw := json.RawMessage(`[ {"role":"user", "content":"hi \u00e9", "n": 1.50} ]`)
	ev := newEvent(mapRecord{})
	ev.Properties["$ai_input"] = raw
	enrichWait(t, r, ev, mapRecord{})

	got, ok := ev.Properties["$ai_input"].(json.RawMessage)
	if !ok {
		t.Fatalf("$ai_input is %T, want json.RawMessage", ev.Properties["$ai_input"])
	}
	if string(got) != string(raw) {
		t.Errorf("$ai_input = %s, want the original bytes %s", got, raw)
	}
}

func TestRedactKeepsRawJSONType(t *testing.T) {
	r := newRules(t, Config{RedactPatterns: `["secret"]`}, Options{})
	ev := newEvent(mapRecord{})
	ev.Properties["$ai_input"] = json.RawMessage(`[{"role":"user","content":"a secret","tokens":12345678901234567890}]`)
	enrichWait(t, r, ev, mapRecord{})

	got, ok := ev.Properties["$ai_input"].(json.RawMessage)
	if !ok {
		t.Fatalf("$ai_input is %T, want json.RawMessage", ev.Properties["$ai_input"])
	}
	if want := `[{"content":"a [REDACTED]","role":"user","tokens":12345678901234567890}]`; string(got) != want {
		t.Errorf("$ai_input = %s, want %s", got, want)
	}
}
