package enrich

import (
	"bytes"
	"encoding/json"
	"regexp"

	"github.com/llm-enricher/enricher/internal/event"
)

// Properties that hold the text of an LLM call.
const (
	propInput  = "$ai_input"
	propOutput = "$ai_output_choices"
)

// redacted replaces every match of a redaction pattern.
const redacted = "[REDACTED]"

// protect applies privacy mode and redaction to the LLM input and output.
func (r *Rules) protect(ev *event.Event, rec Record) {
	if r.privacyAll || r.privacyMatches(rec) {
		for _, name := range []string{propInput, propOutput} {
			if _, ok := ev.Properties[name]; ok {
				ev.Properties[name] = nil
			}
		}
		return
	}
	if len(r.redact) == 0 {
		return
	}
	for _, name := range []string{propInput, propOutput} {
		if v, ok := ev.Properties[name]; ok && v != nil {
			if out, changed := redactValue(v, r.redact); changed {
				ev.Properties[name] = out
			}
		}
	}
}

func (r *Rules) privacyMatches(rec Record) bool {
	for _, c := range r.privacyWhen {
		if c.match(rec) {
			return true
		}
	}
	return false
}

// redactValue redacts a property value that is either raw JSON or decoded
// JSON. Decoded objects and arrays are changed in place. Raw JSON is decoded
// and encoded again only when a pattern matched, and a value that is not
// valid JSON is returned unchanged.
func redactValue(v any, patterns []*regexp.Regexp) (any, bool) {
	raw, isRaw := v.(json.RawMessage)
	if !isRaw {
		return redactNode(v, patterns)
	}

	decoded, err := decodeValue(raw)
	if err != nil {
		return v, false
	}
	out, changed := redactNode(decoded, patterns)
	if !changed {
		return v, false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return v, false
	}
	return json.RawMessage(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), true
}

// redactNode redacts a string, a list of messages or parts, or one message
// or part: the "content" of a message, which is a string or a list of
// parts, and the "text" of a text part.
func redactNode(v any, patterns []*regexp.Regexp) (any, bool) {
	switch x := v.(type) {
	case string:
		return redactString(x, patterns)
	case []any:
		changed := false
		for i, elem := range x {
			if out, ok := redactNode(elem, patterns); ok {
				x[i] = out
				changed = true
			}
		}
		return x, changed
	case map[string]any:
		return x, redactMessage(x, patterns)
	}
	return v, false
}

func redactMessage(m map[string]any, patterns []*regexp.Regexp) bool {
	changed := false
	if content, ok := m["content"]; ok {
		if out, ok := redactNode(content, patterns); ok {
			m["content"] = out
			changed = true
		}
	}
	if isTextPart(m["type"]) {
		if text, ok := m["text"].(string); ok {
			if out, ok := redactString(text, patterns); ok {
				m["text"] = out
				changed = true
			}
		}
	}
	return changed
}

// isTextPart reports whether a part type carries text: "text", and the
// "input_text" and "output_text" of OpenAI's Responses API.
func isTextPart(t any) bool {
	switch t {
	case "text", "input_text", "output_text":
		return true
	}
	return false
}

func redactString(s string, patterns []*regexp.Regexp) (any, bool) {
	changed := false
	for _, re := range patterns {
		if re.MatchString(s) {
			s = re.ReplaceAllLiteralString(s, redacted)
			changed = true
		}
	}
	return s, changed
}
