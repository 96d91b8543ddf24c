// Package record decodes source records into PostHog events.
//
// A Decoder handles one record shape. Version 1, the LLM call record, is
// the only shape today; raw provider bodies or OpenTelemetry GenAI spans can
// be added later as further decoders beside it.
package record

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/llm-enricher/enricher/internal/event"
)

// ErrInvalid marks a record that can never become an event. The pipeline
// sends such records to the dead-letter topic.
var ErrInvalid = errors.New("invalid record")

// Input is one Kafka record to decode.
type Input struct {
	Value     []byte
	Source    event.Source
	Timestamp time.Time // the Kafka record timestamp
}

// Decoder turns a record into an event.
type Decoder interface {
	// Decode returns the event and read access to the decoded record, or an
	// error wrapping ErrInvalid.
	Decode(in Input) (*event.Event, *Fields, error)
}

// Fields is path access into a decoded JSON object. The first read indexes
// the object's top-level members. Each read then scans only the member
// its path starts with, and decodes only the value found, into generic
// values.
type Fields struct {
	raw  []byte
	once sync.Once
	// top holds the top-level members in order, or is nil when raw is not
	// an object.
	top []member
	// buf holds top for most records, so that indexing allocates nothing.
	buf [16]member
}

// member is a top-level member of a record. plain is true when its name
// reads the same decoded, so that it compares with a path as it is.
type member struct {
	name, value []byte
	plain       bool
}

// named reports whether the member's decoded name is key.
func (m *member) named(key string) bool {
	if m.plain {
		return string(m.name) == key
	}
	return decodeKey(m.name) == key
}

// NewFields returns path access into the JSON document raw, which must be
// valid JSON: Decode checks it before it returns Fields.
func NewFields(raw []byte) *Fields {
	return &Fields{raw: raw}
}

// Field returns the value at a dot-separated path such as "metadata.user.tier"
// or "input.0.content", and whether it exists. A path segment that is a
// number indexes an array. A JSON null counts as absent.
func (f *Fields) Field(path string) (any, bool) {
	raw, ok := f.find(path)
	if !ok {
		return nil, false
	}
	if s, ok := plainString(raw); ok {
		return s, true
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, false
	}
	return v, v != nil
}

// find returns the raw value at path: the last top-level member named by
// its first segment, as encoding/json keeps the last duplicate, and the
// rest of the path inside it.
func (f *Fields) find(path string) ([]byte, bool) {
	f.once.Do(f.index)
	if f.top == nil {
		return findPath(f.raw, path)
	}
	first, rest, nested := strings.Cut(path, ".")
	var value []byte
	for _, m := range f.top {
		if m.named(first) {
			value = m.value
		}
	}
	if value == nil {
		return nil, false
	}
	if !nested {
		return value, true
	}
	return findPath(value, rest)
}

func (f *Fields) index() {
	i := skipSpace(f.raw, 0)
	if i >= len(f.raw) || f.raw[i] != '{' {
		return
	}
	top := f.buf[:0]
	if eachMember(f.raw, i, func(name, value []byte) { top = append(top, member{name, value, plainKey(name)}) }) {
		f.top = top
	}
}

// each calls fn for each top-level member in order.
func (f *Fields) each(fn func(name, value []byte)) {
	f.once.Do(f.index)
	if f.top == nil {
		eachMember(f.raw, skipSpace(f.raw, 0), fn)
		return
	}
	for _, m := range f.top {
		fn(m.name, m.value)
	}
}

// adopt takes top as the index of the top-level members, read by the
// decoder in the same pass as the record's fields.
func (f *Fields) adopt(top []member) {
	f.once.Do(func() { f.top = top })
}
