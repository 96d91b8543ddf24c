// Package record decodes source records into PostHog events.
//
// A Decoder handles one record shape. Version 1, the LLM call record, is
// the only shape today; raw provider bodies or OpenTelemetry GenAI spans can
// be added later as further decoders beside it.
package record

import (
	"encoding/json"
	"errors"
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

// Fields is path access into a decoded JSON object. Each read scans the
// record for its path and decodes only the value found, into generic
// values.
type Fields struct {
	raw []byte
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
	raw, ok := findPath(f.raw, path)
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
