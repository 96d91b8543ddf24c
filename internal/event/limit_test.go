package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func newEvent(props map[string]any) *Event {
	return &Event{UUID: ID("c-1", Source{}), Name: Generation, DistinctID: "u-42",
		Timestamp: time.Unix(0, 0).UTC(), Properties: props}
}

func raw(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSize(t *testing.T, ev *Event) int {
	t.Helper()
	n, err := ev.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFitLeavesSmallEventAlone(t *testing.T) {
	ev := newEvent(map[string]any{"$ai_input": json.RawMessage(`[{"role":"user","content":"hi"}]`)})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if _, ok := ev.Properties[PropTruncated]; ok {
		t.Error("small event marked as truncated")
	}
	if _, ok := ev.Properties["$ai_input"].(json.RawMessage); !ok {
		t.Error("small event's raw input was decoded")
	}
}

func TestFitReplacesBase64Media(t *testing.T) {
	img := "data:image/png;base64," + strings.Repeat("iVBORw0KGgo", 300_000)
	ev := newEvent(map[string]any{"$ai_input": raw(t, []any{map[string]any{
		"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "what is this?"},
			map[string]any{"type": "image", "image": img},
		},
	}})})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if n := mustSize(t, ev); n > MaxBytes {
		t.Errorf("size %d > %d", n, MaxBytes)
	}
	b, _ := json.Marshal(ev.Properties["$ai_input"])
	if !strings.Contains(string(b), "[base64 image/png removed") {
		t.Errorf("input %s has no media placeholder", b)
	}
	if !strings.Contains(string(b), "what is this?") {
		t.Errorf("input %s lost its text part", b)
	}
	if ev.Properties[PropTruncated] != true {
		t.Error("event not marked as truncated")
	}
}

func TestFitTruncatesLongTextOnRuneBoundary(t *testing.T) {
	// Three-byte runes, so that a byte cut lands inside a rune unless it
	// looks for the boundary.
	long := strings.Repeat("日本語のテキスト", 40_000) // 950 KB
	ev := newEvent(map[string]any{
		"$ai_input":          raw(t, []any{map[string]any{"role": "user", "content": long}}),
		"$ai_output_choices": raw(t, []any{map[string]any{"role": "assistant", "content": "short answer"}}),
		"conversation_id":    "cv-9",
	})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if n := mustSize(t, ev); n > MaxBytes {
		t.Errorf("size %d > %d", n, MaxBytes)
	}
	b, _ := json.Marshal(ev.Properties["$ai_input"])
	var msgs []map[string]string
	if err := json.Unmarshal(b, &msgs); err != nil {
		t.Fatal(err)
	}
	content := msgs[0]["content"]
	if !utf8.ValidString(content) {
		t.Error("truncated content is not valid UTF-8")
	}
	if !strings.HasPrefix(long, strings.SplitN(content, " [truncated", 2)[0]) {
		t.Error("truncated content is not a prefix of the original")
	}
	if !strings.Contains(content, "[truncated ") {
		t.Error("truncated content has no marker")
	}
	if ev.Properties["conversation_id"] != "cv-9" {
		t.Errorf("conversation_id = %v, want it kept", ev.Properties["conversation_id"])
	}
	out, _ := json.Marshal(ev.Properties["$ai_output_choices"])
	if !strings.Contains(string(out), "short answer") {
		t.Errorf("output %s was changed", out)
	}
}

func TestFitEscapeHeavyText(t *testing.T) {
	// "<" encodes as six bytes, so the byte length understates the size.
	ev := newEvent(map[string]any{"$ai_input": strings.Repeat("<", 200_000)})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if n := mustSize(t, ev); n > MaxBytes {
		t.Errorf("size %d > %d", n, MaxBytes)
	}
}

func TestFitTruncatesOtherPropertiesLast(t *testing.T) {
	ev := newEvent(map[string]any{
		"$ai_input": raw(t, "short"),
		"notes":     strings.Repeat("x", 700_000),
	})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if n := mustSize(t, ev); n > MaxBytes {
		t.Errorf("size %d > %d", n, MaxBytes)
	}
	if ev.Properties["$ai_input"] != "short" {
		t.Errorf("$ai_input = %v, want it kept", ev.Properties["$ai_input"])
	}
}

func TestFitGivesUpOnManySmallStrings(t *testing.T) {
	many := make([]any, 10_000)
	for i := range many {
		many[i] = strings.Repeat("y", 100)
	}
	ev := newEvent(map[string]any{"$ai_tools": many})
	if err := Fit(ev, MaxBytes); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Fit error = %v, want ErrTooLarge", err)
	}
}

// TestRoughMaxBoundsNestedValues checks that the cheap bound holds for the
// value types that rules and lookups produce, and stays below the budget
// for a small event, so that Fit does not serialise it.
func TestRoughMaxBoundsNestedValues(t *testing.T) {
	props := map[string]any{
		"$groups":     map[string]any{"organization": "org-7", "team": "<a&b>"},
		"tags":        []any{"x", 1.5, true, nil, map[string]any{"k": "\u2028"}},
		"count":       int64(42),
		"ratio":       float64(0.25),
		"$ai_input":   json.RawMessage(`[{"role":"user","content":"<b>hi</b>"}]`),
		"plan":        "enterprise",
		"seats":       12,
		"is_rejected": false,
	}
	ev := newEvent(props)
	bound := roughMax(props)
	if size := mustSize(t, ev); bound < size {
		t.Errorf("roughMax = %d, below the serialised size %d", bound, size)
	}
	if bound > MaxBytes {
		t.Errorf("roughMax = %d for a small event, want it under MaxBytes %d", bound, MaxBytes)
	}
}

func TestRoughMaxUnknownTypeExceedsBudget(t *testing.T) {
	props := map[string]any{"at": time.Unix(0, 0)}
	if got := roughMax(props); got <= MaxBytes {
		t.Errorf("roughMax = %d for a time.Time value, want more than MaxBytes", got)
	}
}
