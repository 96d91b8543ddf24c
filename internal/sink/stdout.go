package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/llm-enricher/enricher/internal/event"
)

// Writer writes each event as one line of JSON, in the shape of a /batch/
// API event. It serves dry runs and the embedded demo.
type Writer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewWriter returns a sink that writes JSON lines to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{enc: json.NewEncoder(w)}
}

// Send implements Sink. An event that cannot be encoded is rejected; a
// failed write is reported as ErrClosed, because a broken output stream
// does not heal.
func (s *Writer) Send(ev *event.Event, done func(error)) {
	s.mu.Lock()
	err := s.enc.Encode(ev)
	s.mu.Unlock()
	switch {
	case err == nil:
		done(nil)
	case isEncodeError(err):
		done(fmt.Errorf("%w: %v", ErrRejected, err))
	default:
		done(fmt.Errorf("%w: writing event: %v", ErrClosed, err))
	}
}

// isEncodeError reports whether err comes from encoding the event rather
// than from writing it.
func isEncodeError(err error) bool {
	var (
		value     *json.UnsupportedValueError
		typ       *json.UnsupportedTypeError
		marshaler *json.MarshalerError
	)
	return errors.As(err, &value) || errors.As(err, &typ) || errors.As(err, &marshaler)
}

// Close implements Sink.
func (s *Writer) Close(context.Context) error { return nil }
