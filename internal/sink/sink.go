// Package sink delivers events to their destination and reports, event by
// event, whether each one was accepted.
package sink

import (
	"context"
	"errors"

	"github.com/llm-enricher/enricher/internal/event"
)

var (
	// ErrRejected marks an event that the destination rejected as invalid.
	// Sending it again cannot succeed, so the pipeline dead-letters it.
	ErrRejected = errors.New("event rejected")
	// ErrClosed marks an event that was not delivered because the sink
	// closed first. Its record stays uncommitted and is delivered again
	// after a restart.
	ErrClosed = errors.New("sink closed")
)

// Sink delivers events.
type Sink interface {
	// Send delivers ev and calls done exactly once: with nil when the
	// destination accepted the event, with an error wrapping ErrRejected
	// when it never will, and with ErrClosed when the sink closed first.
	// A sink retries every other failure itself, for as long as it is
	// open, so Send never loses an event. done may run on any goroutine.
	Send(ev *event.Event, done func(error))
	// Close stops retrying, delivers what it can before ctx ends, and then
	// completes every pending event with ErrClosed.
	Close(ctx context.Context) error
}
