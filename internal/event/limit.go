package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxBytes is the size budget of one serialised event. posthog-go v1.27.0
// rejects a message over 500,000 bytes before sending it; the budget leaves
// room for the properties that posthog-go adds itself ($lib, $os and the
// like).
const MaxBytes = 500_000 - 8_192

// ErrTooLarge marks an event that cannot be made to fit MaxBytes.
var ErrTooLarge = errors.New("event too large")

// minTruncate is the shortest string that Fit shortens. Below it, cutting
// more text removes too little to matter.
const minTruncate = 256

// dataURL matches base64 media embedded as a data URL.
var dataURL = regexp.MustCompile(`^data:([a-zA-Z0-9.+/-]*)(;[^,]*)?;base64,`)

// Size returns the length of the event serialised as a /batch/ API event.
func (ev *Event) Size() (int, error) {
	b, err := json.Marshal(wire{
		UUID:       ev.UUID,
		Event:      ev.Name,
		DistinctID: ev.DistinctID,
		Timestamp:  ev.Timestamp,
		Properties: ev.Properties,
	})
	return len(b), err
}

type wire struct {
	UUID       string         `json:"uuid"`
	Event      string         `json:"event"`
	DistinctID string         `json:"distinct_id"`
	Timestamp  time.Time      `json:"timestamp"`
	Properties map[string]any `json:"properties"`
}

// MarshalJSON encodes the event as a /batch/ API event.
func (ev *Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(wire{
		UUID:       ev.UUID,
		Event:      ev.Name,
		DistinctID: ev.DistinctID,
		Timestamp:  ev.Timestamp,
		Properties: ev.Properties,
	})
}

// Fit shrinks an event whose serialised size exceeds maxBytes. It first
// replaces base64 media with a short placeholder, then truncates the longest
// strings, those in $ai_input and $ai_output_choices before any other, each
// on a UTF-8 character boundary. It sets PropTruncated when it changed
// anything, and returns an error wrapping ErrTooLarge when the event still
// does not fit.
func Fit(ev *Event, maxBytes int) error {
	if roughMax(ev.Properties) <= maxBytes {
		return nil
	}
	size, err := ev.Size()
	if err != nil {
		return fmt.Errorf("measuring event: %w", err)
	}
	if size <= maxBytes {
		return nil
	}

	decodeRaw(ev.Properties)
	ev.Properties[PropTruncated] = true
	stripMedia(ev.Properties)
	defer unbox(ev.Properties)
	for _, scope := range [][]string{{"$ai_input", "$ai_output_choices"}, nil} {
		for {
			if size, err = ev.Size(); err != nil {
				return fmt.Errorf("measuring event: %w", err)
			}
			if size <= maxBytes {
				return nil
			}
			if !truncateLongest(ev.Properties, scope, size-maxBytes) {
				break
			}
		}
	}
	return fmt.Errorf("%w: %d bytes after truncation, limit %d", ErrTooLarge, size, maxBytes)
}

// roughMax is an upper bound of the serialised size of the properties,
// cheap enough to run on every event. JSON escaping grows a byte to at most
// six ("\u003c").
func roughMax(p map[string]any) int {
	n := 1024
	for k, v := range p {
		n += 6*len(k) + 8 + roughValueMax(v)
	}
	return n
}

// roughValueMax bounds the serialised size of one value, or returns a
// size over any limit for a type it does not know.
func roughValueMax(v any) int {
	const unknown = 1 << 40
	switch v := v.(type) {
	case json.RawMessage:
		return 6 * len(v)
	case string:
		return 6 * len(v)
	case bool, nil, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return 32
	case map[string]any:
		n := 2
		for k, e := range v {
			n += 6*len(k) + 4 + roughValueMax(e)
		}
		return min(n, unknown)
	case []any:
		n := 2
		for _, e := range v {
			n += 1 + roughValueMax(e)
		}
		return min(n, unknown)
	}
	return unknown
}

// decodeRaw replaces raw JSON property values with decoded ones, so that
// their strings can be edited.
func decodeRaw(p map[string]any) {
	for k, v := range p {
		raw, ok := v.(json.RawMessage)
		if !ok {
			continue
		}
		var dec any
		if json.Unmarshal(raw, &dec) == nil {
			p[k] = dec
		}
	}
}

// stripMedia replaces every base64 media string in v with a placeholder.
func stripMedia(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = stripMedia(e)
		}
	case []any:
		for i, e := range v {
			v[i] = stripMedia(e)
		}
	case string:
		if m := dataURL.FindStringSubmatch(v); m != nil {
			return fmt.Sprintf("[base64 %s removed, %d bytes]", orDefault(m[1], "media"), len(v))
		}
		if isBareBase64(v) {
			return fmt.Sprintf("[base64 media removed, %d bytes]", len(v))
		}
	}
	return v
}

// isBareBase64 reports whether s looks like base64 media without a data URL
// prefix: long, and made only of the base64 alphabet. Prose always has
// spaces or punctuation outside it.
func isBareBase64(s string) bool {
	if len(s) < 4096 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' || c == '\n' || c == '\r') {
			return false
		}
	}
	return true
}

// truncateLongest shortens the longest string in the properties named by
// scope (all properties when scope is nil) by at least excess bytes. It
// returns false when no string is long enough to cut.
func truncateLongest(p map[string]any, scope []string, excess int) bool {
	var best *string
	visit := func(s *string) {
		if len(*s) >= minTruncate && (best == nil || len(*s) > len(*best)) {
			best = s
		}
	}
	if scope == nil {
		for k, v := range p {
			p[k] = walkStrings(v, visit)
		}
	} else {
		for _, k := range scope {
			if v, ok := p[k]; ok {
				p[k] = walkStrings(v, visit)
			}
		}
	}
	if best == nil {
		return false
	}
	*best = cut(*best, excess)
	return true
}

// walkStrings calls visit with a pointer to every string in v, so that the
// caller can replace it, and returns v with the pointed-to strings in
// place.
func walkStrings(v any, visit func(*string)) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = walkStrings(e, visit)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = walkStrings(e, visit)
		}
		return t
	case string:
		// A string in an interface is not addressable: box it, and unbox
		// it after the caller may have changed it.
		b := &boxed{s: t}
		visit(&b.s)
		return b
	case *boxed:
		visit(&t.s)
		return t
	}
	return v
}

// unbox replaces the boxed strings that walkStrings left in v.
func unbox(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = unbox(e)
		}
	case []any:
		for i, e := range t {
			t[i] = unbox(e)
		}
	case *boxed:
		return t.s
	}
	return v
}

// boxed holds a string that truncateLongest may still shorten. It encodes
// as the plain string.
type boxed struct{ s string }

func (b *boxed) MarshalJSON() ([]byte, error) { return json.Marshal(b.s) }

// cut removes at least excess bytes, plus room for the marker, from the end
// of s, on a UTF-8 character boundary, and appends a marker that says how
// much was cut.
func cut(s string, excess int) string {
	const markerRoom = 64
	keep := len(s) - excess - markerRoom
	if excess > len(s)/2 {
		// JSON escaping may make the cut worth less than its byte count:
		// cut deeper so that the loop in Fit converges quickly.
		keep = len(s) - 2*excess - markerRoom
	}
	if keep < 0 {
		keep = 0
	}
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + fmt.Sprintf(" [truncated %d bytes]", len(s)-keep)
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}
