package event

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/posthog/posthog-go"
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

func TestFitCutsLargeCustomProperty(t *testing.T) {
	blob := strings.Repeat("x", 600_000)
	ev := newEvent(map[string]any{
		"$ai_input": raw(t, "short"),
		"blob":      blob,
	})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if n := mustSize(t, ev); n > MaxBytes {
		t.Errorf("size %d > %d", n, MaxBytes)
	}
	if got := canonical(t, ev.Properties["$ai_input"]); got != `"short"` {
		t.Errorf("$ai_input = %s, want it kept", got)
	}
	got, ok := ev.Properties["blob"].(string)
	if !ok {
		t.Fatalf("blob = %T, want a string", ev.Properties["blob"])
	}
	checkCut(t, "blob", blob, got)
	if ev.Properties[PropTruncated] != true {
		t.Error("event not marked as truncated")
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

func TestRoughEventMaxCountsDistinctID(t *testing.T) {
	ev := newEvent(map[string]any{"plan": "free"})
	ev.DistinctID = strings.Repeat("<", 100_000)
	if bound, size := roughEventMax(ev), mustSize(t, ev); bound < size {
		t.Errorf("roughEventMax = %d, below the serialised size %d", bound, size)
	}
}

// cutSlack is how many bytes under the limit a fitted event may end: the
// last rune that did not fit (at most six encoded bytes) and marker digits
// that a shorter cut did not need.
const cutSlack = 32

// checkCut checks that got is a prefix of orig, cut on a character
// boundary, followed by a marker that gives the number of bytes cut.
func checkCut(t *testing.T, name, orig, got string) {
	t.Helper()
	i := strings.LastIndex(got, " [truncated ")
	if i < 0 {
		t.Errorf("%s: %.40q... has no truncation marker", name, got)
		return
	}
	prefix := got[:i]
	if !strings.HasPrefix(orig, prefix) {
		t.Errorf("%s: kept text %.40q... is not a prefix of the original", name, prefix)
	}
	if want := marker(len(orig) - len(prefix)); got[i:] != want {
		t.Errorf("%s: marker %q, want %q", name, got[i:], want)
	}
	if utf8.ValidString(orig) && !utf8.ValidString(prefix) {
		t.Errorf("%s: kept text is not valid UTF-8", name)
	}
	if rest := orig[len(prefix):]; rest != "" && utf8.ValidString(orig) && !utf8.RuneStart(rest[0]) {
		t.Errorf("%s: cut inside a character", name)
	}
}

// inputContent returns the content of the first message of $ai_input.
func inputContent(t *testing.T, ev *Event) string {
	t.Helper()
	msgs, ok := ev.Properties["$ai_input"].([]any)
	if !ok || len(msgs) == 0 {
		t.Fatalf("$ai_input = %T, want a decoded message list", ev.Properties["$ai_input"])
	}
	content, ok := msgs[0].(map[string]any)["content"].(string)
	if !ok {
		t.Fatalf("$ai_input[0].content is %T, want a string", msgs[0].(map[string]any)["content"])
	}
	return content
}

// longTexts are texts over MaxBytes once encoded. Several are made of the
// base64 alphabet without being media, and several grow when JSON escapes
// them (encoding/json and posthog-go write "<" as \u003c).
var longTexts = []struct{ name, text string }{
	{"base64 alphabet", strings.Repeat("ACGT", 150_000)},
	{"one letter", strings.Repeat("x", 900_000)},
	{"html then letters", strings.Repeat("<", 60_000) + strings.Repeat("a", 400_000)},
	{"mixed html", strings.Repeat("<<<<<abcde", 45_000)},
	{"control characters", strings.Repeat("\x01", 100_000) + strings.Repeat("x", 380_000)},
	{"quotes and newlines", strings.Repeat("<\"&>\n", 120_000)},
	{"backspace and form feed", strings.Repeat("\b\f", 100_000) + strings.Repeat("y", 300_000)},
	{"line separators", strings.Repeat("\u2028a", 120_000)},
	{"invalid UTF-8", strings.Repeat("\xff", 90_000) + strings.Repeat("z", 100_000)},
	{"four-byte runes", strings.Repeat("😀<", 120_000)},
}

func TestFitCutsLongTextToFit(t *testing.T) {
	for _, tc := range longTexts {
		t.Run(tc.name, func(t *testing.T) {
			msgs := []any{map[string]any{"role": "user", "content": tc.text}}
			var input any = msgs
			if utf8.ValidString(tc.text) {
				input = raw(t, msgs)
			}
			ev := newEvent(map[string]any{"$ai_input": input})
			if before := mustSize(t, ev); before <= MaxBytes {
				t.Fatalf("test text encodes to %d bytes, want more than %d", before, MaxBytes)
			}
			if err := Fit(ev, MaxBytes); err != nil {
				t.Fatal(err)
			}
			n := mustSize(t, ev)
			if n > MaxBytes {
				t.Errorf("size %d > %d", n, MaxBytes)
			}
			if n < MaxBytes-cutSlack {
				t.Errorf("size %d, want at least %d: the cut removed more than needed", n, MaxBytes-cutSlack)
			}
			content := inputContent(t, ev)
			if strings.Contains(content, "[base64") {
				t.Errorf("text replaced as media: %.60q", content)
			}
			checkCut(t, "content", tc.text, content)
			if ev.Properties[PropTruncated] != true {
				t.Error("event not marked as truncated")
			}
		})
	}
}

// canonical returns v encoded as JSON with sorted keys, so that a raw value
// and its decoded form compare equal.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var val any
	if err := dec.Decode(&val); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(val); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFitKeepsShortFieldWhenOtherIsLong(t *testing.T) {
	dna := strings.Repeat("ACGT", 2_000)
	tests := []struct {
		name        string
		short, long string // property names
		shortValue  any
	}{
		{"input and custom", "$ai_input", "pad",
			raw(t, []any{map[string]any{"role": "user", "content": dna}})},
		{"input and output", "$ai_input", "$ai_output_choices",
			raw(t, []any{map[string]any{"role": "user", "content": dna}})},
		{"custom and input", "note", "$ai_input", strings.Repeat("<a&b>", 100)},
		{"plain string input", "$ai_input", "pad", dna},
		{"prose input and custom", "$ai_input", "pad",
			raw(t, []any{map[string]any{"role": "user", "content": strings.Repeat("Describe this, please. ", 300)}})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := canonical(t, tc.shortValue)
			// Spaces keep the long text outside the base64 alphabet.
			long := strings.Repeat("padding ", 65_000)
			ev := newEvent(map[string]any{tc.short: tc.shortValue, tc.long: long})
			if err := Fit(ev, MaxBytes); err != nil {
				t.Fatal(err)
			}
			if n := mustSize(t, ev); n > MaxBytes {
				t.Errorf("size %d > %d", n, MaxBytes)
			}
			if got := canonical(t, ev.Properties[tc.short]); got != want {
				t.Errorf("%s changed to %.80s...", tc.short, got)
			}
			got, ok := ev.Properties[tc.long].(string)
			if !ok {
				t.Fatalf("%s = %T, want a string", tc.long, ev.Properties[tc.long])
			}
			checkCut(t, tc.long, long, got)
		})
	}
}

func TestFitCutsLongestToCommonLength(t *testing.T) {
	in := strings.Repeat("a", 300_000)
	out := strings.Repeat("b", 300_000)
	note := strings.Repeat("n", 8_000)
	ev := newEvent(map[string]any{
		"$ai_input":          raw(t, []any{map[string]any{"role": "user", "content": in}}),
		"$ai_output_choices": raw(t, []any{map[string]any{"role": "assistant", "content": out}}),
		"note":               note,
	})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	n := mustSize(t, ev)
	if n > MaxBytes || n < MaxBytes-cutSlack {
		t.Errorf("size %d, want in [%d, %d]", n, MaxBytes-cutSlack, MaxBytes)
	}
	gotIn := inputContent(t, ev)
	gotOut := ev.Properties["$ai_output_choices"].([]any)[0].(map[string]any)["content"].(string)
	checkCut(t, "input", in, gotIn)
	checkCut(t, "output", out, gotOut)
	if d := len(gotIn) - len(gotOut); d < -8 || d > 8 {
		t.Errorf("input cut to %d bytes and output to %d, want equal lengths", len(gotIn), len(gotOut))
	}
	if ev.Properties["note"] != note {
		t.Error("note was cut")
	}
}

func TestFitReplacesLargestMediaFirst(t *testing.T) {
	photo := "data:image/jpeg;base64," + strings.Repeat("/9j/4AAQSkZJRg", 200_000)
	icon := "data:image/png;base64," + strings.Repeat("iVBORw0KGgo", 2_000)
	ev := newEvent(map[string]any{"$ai_input": raw(t, []any{map[string]any{
		"role": "user", "content": []any{
			map[string]any{"type": "image", "image": icon},
			map[string]any{"type": "image", "image": photo},
		},
	}})})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	parts := ev.Properties["$ai_input"].([]any)[0].(map[string]any)["content"].([]any)
	if got := parts[0].(map[string]any)["image"]; got != icon {
		t.Errorf("icon changed to %.60q", got)
	}
	want := "[base64 image/jpeg removed, " + strconv.Itoa(len(photo)) + " bytes]"
	if got := parts[1].(map[string]any)["image"]; got != want {
		t.Errorf("photo = %.60q, want %q", got, want)
	}
}

func TestFitKeepsRawNumbers(t *testing.T) {
	input := `[{"role":"user","content":"` + strings.Repeat("q", 600_000) +
		`","tokens":12345678901234567890,"temperature":0.70}]`
	ev := newEvent(map[string]any{"$ai_input": json.RawMessage(input)})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev.Properties["$ai_input"])
	if err != nil {
		t.Fatal(err)
	}
	for _, num := range []string{`"tokens":12345678901234567890`, `"temperature":0.70`} {
		if !strings.Contains(string(b), num) {
			t.Errorf("input lost %s", num)
		}
	}
}

func TestFitDecodingAloneFits(t *testing.T) {
	// Each \u00e9 escape decodes to two bytes, so the decoded input is a
	// third of the raw one.
	input := `"` + strings.Repeat(`\u00e9`, 90_000) + `"`
	ev := newEvent(map[string]any{"$ai_input": json.RawMessage(input)})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if ev.Properties["$ai_input"] != strings.Repeat("é", 90_000) {
		t.Error("input changed beyond decoding")
	}
	if _, ok := ev.Properties[PropTruncated]; ok {
		t.Error("event marked as truncated, but nothing was cut")
	}
}

func TestEscapedLenMatchesSize(t *testing.T) {
	var ascii strings.Builder
	for c := range utf8.RuneSelf {
		ascii.WriteByte(byte(c))
	}
	for _, s := range []string{
		"", ascii.String(), "日本語", "\u2028\u2029", "\ufffd", "\xff\xfe",
		"\xed\xa0\x80", "a\xe2\x80", "😀", "\b\f\b",
	} {
		ev := newEvent(map[string]any{"s": s})
		empty := newEvent(map[string]any{"s": ""})
		if got, want := escapedLen(s), mustSize(t, ev)-mustSize(t, empty); got != want {
			t.Errorf("escapedLen(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestSizeCountsGoJSONEscapes(t *testing.T) {
	ev := newEvent(map[string]any{"s": "\b\\b\f"})
	b, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	// \b and \f take six bytes each in posthog-go's encoding, and the
	// escaped backslash before "b" is not a \b escape.
	if got, want := mustSize(t, ev), len(b)+8; got != want {
		t.Errorf("Size = %d, want %d", got, want)
	}
}

// sizeLogger records the message sizes that posthog-go logs when it rejects
// a message as too big.
type sizeLogger struct {
	mu    sync.Mutex
	sizes []int
}

func (l *sizeLogger) Debugf(string, ...any) {}
func (l *sizeLogger) Logf(string, ...any)   {}
func (l *sizeLogger) Warnf(string, ...any)  {}

func (l *sizeLogger) Errorf(format string, args ...any) {
	if !strings.HasPrefix(format, "message exceeds maximum size") || len(args) == 0 {
		return
	}
	if n, ok := args[0].(int); ok {
		l.mu.Lock()
		l.sizes = append(l.sizes, n)
		l.mu.Unlock()
	}
}

// postHogSize returns the size that posthog-go measures for ev, which must
// be over its 500,000-byte limit so that posthog-go logs the size.
func postHogSize(t *testing.T, ev *Event) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	logger := &sizeLogger{}
	client, err := posthog.NewWithConfig("phc_test", posthog.Config{
		Endpoint: srv.URL, BatchSize: 1, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = client.Enqueue(posthog.Capture{
		Uuid: ev.UUID, DistinctId: ev.DistinctID, Event: ev.Name,
		Timestamp: ev.Timestamp, Properties: ev.Properties,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Close drains the queue, so the size is logged by the time it returns.
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if len(logger.sizes) != 1 {
		t.Fatalf("posthog-go logged %d oversize messages, want 1", len(logger.sizes))
	}
	return logger.sizes[0]
}

// TestSizeMatchesPostHogGo checks Size against the size that posthog-go
// measures. posthog-go adds the same fields and properties to every event,
// so the difference must not depend on the text.
func TestSizeMatchesPostHogGo(t *testing.T) {
	plain := newEvent(map[string]any{"$ai_input": strings.Repeat("a", 600_000)})
	overhead := postHogSize(t, plain) - mustSize(t, plain)
	if overhead < 0 || overhead > MaxBytes/50 {
		t.Fatalf("posthog-go adds %d bytes, want a small positive number", overhead)
	}
	for _, tc := range longTexts {
		ev := newEvent(map[string]any{"$ai_input": tc.text})
		if got := postHogSize(t, ev) - mustSize(t, ev); got != overhead {
			t.Errorf("%s: posthog-go measures %d bytes more than Size, want %d", tc.name, got, overhead)
		}
	}
}

func FuzzFit(f *testing.F) {
	f.Add("hello", "x", uint16(0), uint8(0))
	f.Add("ACGT", "<", uint16(7), uint8(1))
	f.Add("data:image/png;base64,AAAA", "\b\u2028\xff", uint16(300), uint8(2))
	f.Add(strings.Repeat("<\"&>\n", 50), "日本", uint16(1000), uint8(7))
	f.Add("", "data:image/png;base64,iVBORw0KGgo", uint16(3), uint8(9))
	f.Add("\x00\x1f", "😀\"", uint16(65535), uint8(15))
	f.Fuzz(func(t *testing.T, short, unit string, extra uint16, layout uint8) {
		const limit = 16_000
		if unit == "" {
			unit = "x"
		}
		// The long text alone encodes to between limit and about four
		// times limit bytes, unless repeating unit joins invalid UTF-8
		// bytes into characters that take fewer bytes escaped.
		perLimit := limit / escapedLen(unit)
		long := strings.Repeat(unit, perLimit+1+int(extra)%(3*perLimit+1))
		longOver := escapedLen(long) > limit

		shortProp, longProp := "$ai_input", "pad"
		if layout&1 != 0 {
			shortProp = "note"
		}
		if layout&2 != 0 {
			longProp = "$ai_output_choices"
		}
		var shortValue, longValue any = short, long
		if layout&4 != 0 && utf8.ValidString(short) {
			shortValue = raw(t, []any{map[string]any{"role": "user", "content": short}})
		}
		if layout&8 != 0 && utf8.ValidString(long) {
			longValue = raw(t, []any{map[string]any{"role": "assistant", "content": long}})
		}
		before := canonical(t, shortValue)
		ev := newEvent(map[string]any{shortProp: shortValue, longProp: longValue, "model": "gpt-4o"})

		// Two strings can always be cut to fit the limit.
		if err := Fit(ev, limit); err != nil {
			t.Fatalf("Fit: %v", err)
		}
		b, err := ev.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(b) || !json.Valid(b) {
			t.Fatal("fitted event is not valid UTF-8 JSON")
		}
		if n := mustSize(t, ev); n > limit {
			t.Errorf("size %d > %d", n, limit)
		}
		if ev.Properties["model"] != "gpt-4o" {
			t.Errorf("model = %v, want it kept", ev.Properties["model"])
		}
		if longOver && escapedLen(short) <= limit/4 && !dataURL.MatchString(short) {
			if after := canonical(t, ev.Properties[shortProp]); after != before {
				t.Errorf("short field %s changed from %.80s to %.80s", shortProp, before, after)
			}
		}
		if got, ok := ev.Properties[longProp].(string); ok && longOver && !dataURL.MatchString(long) {
			checkCut(t, longProp, long, got)
		}
	})
}

func TestFitLeavesSharedValuesAlone(t *testing.T) {
	text := strings.Repeat("s", 600_000)
	shared := map[string]any{"texts": []any{text}}
	ev := newEvent(map[string]any{"lookup": shared})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if shared["texts"].([]any)[0] != text {
		t.Error("Fit changed a map that the event shares")
	}
	got := ev.Properties["lookup"].(map[string]any)["texts"].([]any)[0].(string)
	checkCut(t, "lookup.texts[0]", text, got)
}

func TestFitLeavesEventUnderLimitAlone(t *testing.T) {
	// The cheap bound is over the limit, so Fit has to measure the event.
	input := json.RawMessage(`[{"role":"user","content":"` + strings.Repeat("a", 200_000) + `"}]`)
	ev := newEvent(map[string]any{"$ai_input": input})
	if roughEventMax(ev) <= MaxBytes {
		t.Fatalf("roughEventMax = %d, want it over %d for this test", roughEventMax(ev), MaxBytes)
	}
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if got, ok := ev.Properties["$ai_input"].(json.RawMessage); !ok || string(got) != string(input) {
		t.Error("input of an event under the limit was changed")
	}
	if _, ok := ev.Properties[PropTruncated]; ok {
		t.Error("event under the limit marked as truncated")
	}
}

func TestFitKeepsShortMediaWhenTextIsLong(t *testing.T) {
	icon := "data:image/png;base64," + strings.Repeat("iVBORw0KGgo", 2_000)
	pad := strings.Repeat("padding ", 75_000)
	input := raw(t, []any{map[string]any{"role": "user", "content": []any{
		map[string]any{"type": "image", "image": icon},
	}}})
	want := canonical(t, input)
	ev := newEvent(map[string]any{"$ai_input": input, "pad": pad})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	if got := canonical(t, ev.Properties["$ai_input"]); got != want {
		t.Errorf("input changed to %.80s...", got)
	}
	got, ok := ev.Properties["pad"].(string)
	if !ok {
		t.Fatalf("pad = %T, want a string", ev.Properties["pad"])
	}
	checkCut(t, "pad", pad, got)
}

func TestFitReplacesMediaBeforeCuttingText(t *testing.T) {
	img := "data:image/png;base64," + strings.Repeat("iVBORw0KGgo", 300_000)
	prompt := strings.Repeat("a long prompt ", 68_000)
	ev := newEvent(map[string]any{"$ai_input": raw(t, []any{
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "image", "image": img}}},
		map[string]any{"role": "user", "content": prompt},
	})})
	if err := Fit(ev, MaxBytes); err != nil {
		t.Fatal(err)
	}
	// Only the prompt is cut, so it keeps all the room that the
	// placeholder leaves.
	if n := mustSize(t, ev); n > MaxBytes || n < MaxBytes-cutSlack {
		t.Errorf("size %d, want in [%d, %d]", n, MaxBytes-cutSlack, MaxBytes)
	}
	msgs := ev.Properties["$ai_input"].([]any)
	image := msgs[0].(map[string]any)["content"].([]any)[0].(map[string]any)["image"]
	if want := "[base64 image/png removed, " + strconv.Itoa(len(img)) + " bytes]"; image != want {
		t.Errorf("image = %.60q, want %q", image, want)
	}
	checkCut(t, "prompt", prompt, msgs[1].(map[string]any)["content"].(string))
}
