package event

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// wire is the /batch/ API shape of an event.
type wire struct {
	UUID       string         `json:"uuid"`
	Event      string         `json:"event"`
	DistinctID string         `json:"distinct_id"`
	Timestamp  time.Time      `json:"timestamp"`
	Properties map[string]any `json:"properties"`
}

func (ev *Event) wire() wire {
	return wire{
		UUID:       ev.UUID,
		Event:      ev.Name,
		DistinctID: ev.DistinctID,
		Timestamp:  ev.Timestamp,
		Properties: ev.Properties,
	}
}

// MarshalJSON encodes the event as a /batch/ API event.
func (ev *Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(ev.wire())
}

// Size returns the length of the event serialised as a /batch/ API event,
// as posthog-go v1.27.0 counts it before its 500,000-byte check, less the
// fields and properties that posthog-go adds itself.
//
// posthog-go encodes with github.com/goccy/go-json, which writes the same
// bytes as encoding/json except that it escapes U+0008 and U+000C as
// \u0008 and \u000c where encoding/json writes \b and \f. Size adds those
// four bytes for each \b and \f in the encoding/json output.
//
// NOTE: a \b or \f escape inside a json.RawMessage value is kept as it is
// by both encoders, so Size counts it four bytes too long. The error is on
// the safe side.
func (ev *Event) Size() (int, error) {
	b, err := ev.MarshalJSON()
	if err != nil {
		return 0, err
	}
	return len(b) + 4*countShortEscapes(b), nil
}

// countShortEscapes counts the \b and \f escapes in the JSON text b.
func countShortEscapes(b []byte) int {
	n := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			continue
		}
		// Outside strings JSON has no backslash, and inside them a
		// backslash always starts a two-byte escape, so skipping its
		// second byte keeps the scan aligned.
		i++
		if b[i] == 'b' || b[i] == 'f' {
			n++
		}
	}
	return n
}

// escapedLen returns the length of s encoded as JSON string content, quotes
// excluded, by the rules of Size.
func escapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			n += escapedByteLen[c]
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n += escapedRuneLen(r, size)
		i += size
	}
	return n
}

// escapedRuneLen returns the encoded length of the rune r, which took size
// bytes in its string.
func escapedRuneLen(r rune, size int) int {
	switch {
	case r < utf8.RuneSelf:
		return escapedByteLen[r]
	case r == utf8.RuneError && size == 1:
		return len(`\ufffd`) // an invalid byte
	case r == '\u2028' || r == '\u2029':
		return len(`\u2028`)
	}
	return size
}

// escapedByteLen is the encoded length of each ASCII byte: 6 for a \u00XX
// escape (control characters, which include U+0008 and U+000C, and the
// HTML characters <, > and &), 2 for \", \\, \n, \r and \t, and 1 for the
// rest.
var escapedByteLen = func() (t [utf8.RuneSelf]int) {
	for c := range t {
		switch {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
			t[c] = 2
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			t[c] = 6
		default:
			t[c] = 1
		}
	}
	return t
}()
