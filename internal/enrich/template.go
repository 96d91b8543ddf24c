package enrich

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llm-enricher/enricher/internal/lookup"
)

// template is a parsed Template: literal text and placeholders, in order.
type template struct {
	parts []templatePart
}

// templatePart is literal text, or a placeholder when path is set. A
// placeholder reads the record, or the result of the lookup named by
// lookupName, which New turns into lookupIndex.
type templatePart struct {
	literal     string
	path        string
	lookupName  string
	lookupIndex int
	isRef       bool
}

// parseTemplate parses text with {path} and {lookup:path} placeholders,
// where {{ and }} stand for literal braces.
func parseTemplate(text string) (*template, error) {
	t := &template{}
	var lit strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '{' && strings.HasPrefix(text[i:], "{{"):
			lit.WriteByte('{')
			i++
		case c == '}' && strings.HasPrefix(text[i:], "}}"):
			lit.WriteByte('}')
			i++
		case c == '}':
			return t, fmt.Errorf("invalid template %q: unmatched '}' at byte %d: write }} for a literal brace", text, i)
		case c == '{':
			end := strings.IndexByte(text[i:], '}')
			if end < 0 {
				return t, fmt.Errorf("invalid template %q: unclosed '{' at byte %d", text, i)
			}
			part, err := parsePlaceholder(text[i+1 : i+end])
			if err != nil {
				return t, fmt.Errorf("invalid template %q: %w", text, err)
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, templatePart{literal: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, part)
			i += end
		default:
			lit.WriteByte(c)
		}
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, templatePart{literal: lit.String()})
	}
	return t, nil
}

func parsePlaceholder(ref string) (templatePart, error) {
	if strings.ContainsAny(ref, "{ ") {
		return templatePart{}, fmt.Errorf("invalid placeholder {%s}", ref)
	}
	name, path, isLookup := strings.Cut(ref, ":")
	switch {
	case !isLookup && ref == "":
		return templatePart{}, errors.New("empty placeholder {}")
	case !isLookup:
		return templatePart{path: ref, isRef: true}, nil
	case name == "":
		return templatePart{}, fmt.Errorf("placeholder {%s} has no lookup name before ':'", ref)
	}
	return templatePart{lookupName: name, path: path, isRef: true}, nil
}

// lookupNames returns the lookups the template reads.
func (t *template) lookupNames() []string {
	var names []string
	for _, p := range t.parts {
		if p.lookupName != "" {
			names = append(names, p.lookupName)
		}
	}
	return names
}

// render fills the placeholders. A placeholder with no value makes the whole
// template resolve to nothing, so that no half-filled text is sent.
func (t *template) render(rec Record, results []lookup.Result) (any, resolution) {
	var b strings.Builder
	status := resolved
	for i := range t.parts {
		p := &t.parts[i]
		if !p.isRef {
			b.WriteString(p.literal)
			continue
		}

		var v any
		var res resolution
		if p.lookupName == "" {
			v, res = fromRecord(rec, p.path)
		} else {
			v, res = fromLookup(results[p.lookupIndex], p.path)
		}
		// Keep looking after a missing value: a failed lookup later in
		// the template must still mark the event as partial.
		switch {
		case res == failed:
			return nil, failed
		case res != resolved:
			status = unresolved
		case status == resolved && !writeText(&b, v):
			status = unresolved
		}
	}
	if status != resolved {
		return nil, status
	}
	return b.String(), resolved
}

// writeText writes a scalar as text, and an object or array as JSON. Null
// writes nothing and reports false.
func writeText(b *strings.Builder, v any) bool {
	if v == nil {
		return false
	}
	if s, ok := lookup.String(v); ok {
		b.WriteString(s)
		return true
	}
	data, err := json.Marshal(v)
	if err != nil {
		return false
	}
	b.Write(data)
	return true
}
