package record

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/event"
)

// recordR is the reference record used across the tests.
const recordR = `{"id":"c-001","timestamp":"2026-05-01T10:00:00Z","distinct_id":"u-42",
 "provider":"openai","model":"gpt-4o-mini",
 "input":[{"role":"user","content":"hi"}],
 "output_choices":[{"role":"assistant","content":"hello"}],
 "input_tokens":12,"output_tokens":5,
 "properties":{"conversation_id":"cv-9"}}`

var src = event.Source{Topic: "llm-calls", Partition: 2, Offset: 41}

func decode(t *testing.T, v string) *event.Event {
	t.Helper()
	ev, _, err := V1{}.Decode(Input{Value: []byte(v), Source: src, Timestamp: time.Unix(100, 0)})
	if err != nil {
		t.Fatalf("Decode(%s): %v", v, err)
	}
	return ev
}

// props re-encodes the properties, so that raw and decoded values compare
// alike.
func props(t *testing.T, ev *event.Event) map[string]any {
	t.Helper()
	b, err := json.Marshal(ev.Properties)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeReferenceRecord(t *testing.T) {
	ev := decode(t, recordR)
	if ev.Name != event.Generation {
		t.Errorf("Name = %q, want %q", ev.Name, event.Generation)
	}
	if want := event.ID("c-001", src); ev.UUID != want {
		t.Errorf("UUID = %q, want %q", ev.UUID, want)
	}
	if ev.DistinctID != "u-42" {
		t.Errorf("DistinctID = %q, want u-42", ev.DistinctID)
	}
	if want := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC); !ev.Timestamp.Equal(want) {
		t.Errorf("Timestamp = %v, want %v", ev.Timestamp, want)
	}
	p := props(t, ev)
	want := map[string]any{
		"$ai_provider":       "openai",
		"$ai_model":          "gpt-4o-mini",
		"$ai_input_tokens":   12.0,
		"$ai_output_tokens":  5.0,
		"conversation_id":    "cv-9",
		"$ai_input":          []any{map[string]any{"role": "user", "content": "hi"}},
		"$ai_output_choices": []any{map[string]any{"role": "assistant", "content": "hello"}},
	}
	for k, v := range want {
		if got, err := json.Marshal(p[k]); err != nil || string(got) != mustJSON(v) {
			t.Errorf("property %s = %s, want %s", k, got, mustJSON(v))
		}
	}
	if len(p) != len(want) {
		t.Errorf("properties = %v, want exactly %v", p, want)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDecodeTokenCountsAreIntegers(t *testing.T) {
	ev := decode(t, `{"id":"a","input_tokens":"12","output_tokens":5.0,"reasoning_tokens":3}`)
	for k, want := range map[string]int64{"$ai_input_tokens": 12, "$ai_output_tokens": 5, "$ai_reasoning_tokens": 3} {
		got, ok := ev.Properties[k].(int64)
		if !ok || got != want {
			t.Errorf("%s = %#v, want int64 %d", k, ev.Properties[k], want)
		}
	}
}

func TestDecodeAbsentCountsStayAbsent(t *testing.T) {
	ev := decode(t, `{"id":"a","cache_read_input_tokens":0,"cache_creation_input_tokens":0}`)
	for _, k := range []string{"$ai_input_tokens", "$ai_output_tokens", "$ai_cache_read_input_tokens", "$ai_cache_creation_input_tokens", "$ai_reasoning_tokens"} {
		if v, ok := ev.Properties[k]; ok {
			t.Errorf("%s = %v, want absent", k, v)
		}
	}
}

func TestDecodeTimestamps(t *testing.T) {
	kafkaTime := time.Unix(100, 0).UTC()
	cases := []struct {
		name, value string
		want        time.Time
	}{
		{"rfc3339", `{"timestamp":"2026-05-01T12:00:00+02:00"}`, time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)},
		{"epoch ms", `{"timestamp":1777629600123}`, time.UnixMilli(1777629600123).UTC()},
		{"absent", `{}`, kafkaTime},
		{"null", `{"timestamp":null}`, kafkaTime},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := decode(t, tc.value).Timestamp; !got.Equal(tc.want) {
				t.Errorf("Timestamp = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecodeIdentityWithoutID(t *testing.T) {
	ev := decode(t, `{"model":"m"}`)
	if want := event.ID("", src); ev.UUID != want {
		t.Errorf("UUID = %q, want %q from topic/partition/offset", ev.UUID, want)
	}
	if ev.UUID == event.ID("", event.Source{Topic: src.Topic, Partition: src.Partition, Offset: src.Offset + 1}) {
		t.Error("records at different offsets got the same uuid")
	}
}

func TestDecodeDistinctIDFallback(t *testing.T) {
	ev := decode(t, `{"id":"a","trace_id":"tr-1"}`)
	if ev.DistinctID != "tr-1" {
		t.Errorf("DistinctID = %q, want the trace id", ev.DistinctID)
	}
	if ev.Properties["$process_person_profile"] != false {
		t.Errorf("$process_person_profile = %v, want false", ev.Properties["$process_person_profile"])
	}
	ev = decode(t, `{"id":"a"}`)
	if ev.DistinctID != ev.UUID {
		t.Errorf("DistinctID = %q, want the uuid %q", ev.DistinctID, ev.UUID)
	}
	ev = decode(t, `{"id":"a","distinct_id":"u-1","trace_id":"tr-1"}`)
	if _, ok := ev.Properties["$process_person_profile"]; ok {
		t.Error("$process_person_profile set although the record has a distinct id")
	}
}

func TestDecodeTypes(t *testing.T) {
	for typ, want := range map[string]string{
		"generation": event.Generation, "embedding": event.Embedding,
		"span": event.Span, "trace": event.Trace,
	} {
		if got := decode(t, `{"type":"`+typ+`"}`).Name; got != want {
			t.Errorf("type %s: Name = %q, want %q", typ, got, want)
		}
	}
}

func TestDecodeMapping(t *testing.T) {
	p := props(t, decode(t, `{"latency_ms":1500,"time_to_first_token":0.2,"http_status":200,
		"is_error":true,"error":{"code":"x"},"stop_reason":"stop","base_url":"https://b",
		"model_parameters":{"temperature":0.1},"tools":[{"name":"f"}],"span_id":"s","parent_id":"p",
		"span_name":"n","session_id":"sess","ai_session_id":"ais","groups":{"company":"acme"},
		"cache_read_input_tokens":7,"cache_creation_input_tokens":8}`))
	want := map[string]string{
		"$ai_latency":                     `1.5`,
		"$ai_time_to_first_token":         `0.2`,
		"$ai_http_status":                 `200`,
		"$ai_is_error":                    `true`,
		"$ai_error":                       `"{\"code\":\"x\"}"`,
		"$ai_stop_reason":                 `"stop"`,
		"$ai_base_url":                    `"https://b"`,
		"$ai_model_parameters":            `{"temperature":0.1}`,
		"$ai_tools":                       `[{"name":"f"}]`,
		"$ai_span_id":                     `"s"`,
		"$ai_parent_id":                   `"p"`,
		"$ai_span_name":                   `"n"`,
		"$session_id":                     `"sess"`,
		"$ai_session_id":                  `"ais"`,
		"$groups":                         `{"company":"acme"}`,
		"$ai_cache_read_input_tokens":     `7`,
		"$ai_cache_creation_input_tokens": `8`,
	}
	for k, v := range want {
		if got := mustJSON(p[k]); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
}

func TestDecodeSlowPathKeys(t *testing.T) {
	for name, doc := range map[string]string{
		// The key is spelled with an escape for "$".
		"escaped dollar": `{"model":"m","\u0024ai_span_name":"raw"}`,
		// A duplicate member sends the record to json.Unmarshal.
		"duplicate member": `{"model":"x","model":"m","$ai_span_name":"raw"}`,
		// Custom properties beyond the inline slots, and one spelled
		// with an escape, which also takes the slow path.
		"many properties":  `{"model":"m","$ai_span_name":"raw","properties":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}}`,
		"escaped property": `{"model":"m","$ai_span_name":"raw","properties":{"\u0074ier":"gold"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := props(t, decode(t, doc))
			if p["$ai_span_name"] != "raw" || p["$ai_model"] != "m" {
				t.Errorf("properties = %v, want $ai_span_name raw and $ai_model m", p)
			}
			if strings.Contains(doc, `"j":10`) && (p["a"] != 1.0 || p["j"] != 10.0) {
				t.Errorf("properties = %v, want a=1 and j=10", p)
			}
			if strings.Contains(doc, `tier`) && p["tier"] != "gold" {
				t.Errorf("tier = %v, want gold", p["tier"])
			}
		})
	}
}

func TestDecodeFieldsRead(t *testing.T) {
	doc := `{"model":"m","metadata":{"user":{"tier":"a"}},"metadata":{"user":{"tier":"gold"}},"input":[{"content":"hi"}]}`
	_, f, err := V1{}.Decode(Input{Value: []byte(doc), Source: src})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{"model": "m", "metadata.user.tier": "gold", "input.0.content": "hi"} {
		if got, ok := f.Field(path); !ok || got != want {
			t.Errorf("Field(%s) = %v, %v; want %v", path, got, ok, want)
		}
	}
	if got, ok := f.Field("absent"); ok {
		t.Errorf("Field(absent) = %v, want absent", got)
	}
}

func TestDecodePassThroughAndOverride(t *testing.T) {
	p := props(t, decode(t, `{"model":"m","$ai_span_name":"raw","$set":{"plan":"pro"},
		"properties":{"$ai_model":"override","tier":"gold"}}`))
	if p["$ai_span_name"] != "raw" {
		t.Errorf("$ai_span_name = %v, want the passed-through raw", p["$ai_span_name"])
	}
	if mustJSON(p["$set"]) != `{"plan":"pro"}` {
		t.Errorf("$set = %v, want it passed through", p["$set"])
	}
	if p["$ai_model"] != "override" {
		t.Errorf("$ai_model = %v, want the custom property to win", p["$ai_model"])
	}
	if p["tier"] != "gold" {
		t.Errorf("tier = %v, want gold", p["tier"])
	}
}

func TestDecodePrivacyMode(t *testing.T) {
	ev := decode(t, `{"input":[{"role":"user","content":"secret"}],"output_choices":[],"privacy_mode":true}`)
	for _, k := range []string{"$ai_input", "$ai_output_choices"} {
		v, ok := ev.Properties[k]
		if !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
}

func TestDecodeInvalid(t *testing.T) {
	cases := map[string]string{
		"truncated JSON":      `{"id":"c-1","model":`,
		"not UTF-8 JSON":      "\x00\x9f\x92",
		"array":               `[1,2]`,
		"string":              `"hello"`,
		"empty":               ``,
		"unknown type":        `{"type":"completion"}`,
		"bad timestamp":       `{"timestamp":"yesterday"}`,
		"fractional tokens":   `{"input_tokens":1.5}`,
		"wrong field type":    `{"model":5}`,
		"groups not object":   `{"groups":["acme"]}`,
		"trailing garbage":    `{"id":"a"} x`,
		"bad passthrough key": `{"$ai_x":1,`,
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := V1{}.Decode(Input{Value: []byte(v), Source: src})
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode(%q) error = %v, want ErrInvalid", v, err)
			}
		})
	}
}

func TestDecodeErrorNamesField(t *testing.T) {
	cases := map[string]string{
		`{"input_tokens":"abc"}`:            `input_tokens: "abc" is not an integer count`,
		`{"model":"m","output_tokens":1.5}`: `output_tokens: 1.5 is not an integer count`,
		`{"INPUT_TOKENS":"x"}`:              `INPUT_TOKENS: "x" is not an integer count`,
		`{"latency":"slow"}`:                `latency is a string, want a number`,
		`{"is_error":"yes"}`:                `is_error is a string, want true or false`,
		`{"model":5}`:                       `model is a number, want a string`,
		`{"properties":[1]}`:                `properties is an array, want an object`,
		`{"id":"a","http_status":"200","reasoning_tokens":true}`: `reasoning_tokens: true is not an integer count`,
	}
	for doc, want := range cases {
		_, _, err := V1{}.Decode(Input{Value: []byte(doc), Source: src})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%s) error = %v, want ErrInvalid", doc, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) error = %q, want it to contain %q", doc, err, want)
		}
		if strings.Contains(err.Error(), "callV1") || strings.Contains(err.Error(), "Go ") {
			t.Errorf("Decode(%s) error = %q names a Go type", doc, err)
		}
	}
}

func TestFieldsPaths(t *testing.T) {
	_, f, err := V1{}.Decode(Input{Value: []byte(`{"metadata":{"user":{"tier":"pro"}},"input":[{"content":"hi"}],"n":null}`)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want any
		ok   bool
	}{
		{"metadata.user.tier", "pro", true},
		{"input.0.content", "hi", true},
		{"input.1.content", nil, false},
		{"metadata.missing", nil, false},
		{"n", nil, false},
		{"metadata.user.tier.x", nil, false},
	}
	for _, tc := range cases {
		got, ok := f.Field(tc.path)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Field(%q) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(recordR))
	f.Add([]byte(`{"timestamp":1,"input_tokens":"3","$x":1}`))
	f.Add([]byte("\x00\x9f\x92"))
	f.Fuzz(func(t *testing.T, v []byte) {
		ev, _, err := V1{}.Decode(Input{Value: v, Source: src})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if ev.UUID == "" || ev.DistinctID == "" || ev.Name == "" {
			t.Fatalf("event without identity: %+v", ev)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
	})
}
