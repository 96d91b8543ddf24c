// Package record decodes source records into PostHog events.
//
// A Decoder handles one record shape. Version 1, the LLM call record, is
// the only shape today; raw provider bodies or OpenTelemetry GenAI spans can
// be added later as further decoders beside it.
package record

import (
	"encoding/json"
	"errors"
	"strconv"
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

// Fields is path access into a decoded JSON object. It parses the record a
// second time, into generic values, only when a path is first read.
type Fields struct {
	raw  []byte
	once sync.Once
	root any
}

// NewFields returns path access into the JSON document raw.
func NewFields(raw []byte) *Fields {
	return &Fields{raw: raw}
}

// Field returns the value at a dot-separated path such as "metadata.user.tier"
// or "input.0.content", and whether it exists. A path segment that is a
// number indexes an array.
func (f *Fields) Field(path string) (any, bool) {
	f.once.Do(func() {
		if err := json.Unmarshal(f.raw, &f.root); err != nil {
			f.root = nil
		}
	})
	cur := f.root
	for seg := range strings.SplitSeq(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, cur != nil
}
