// Package enrich adds custom properties to events: static values, values
// copied from the source record, and values from lookups.
package enrich

import (
	"context"

	"github.com/llm-enricher/enricher/internal/event"
)

// Record is read access to the decoded source record.
type Record interface {
	// Field returns the value at a dot-separated path such as
	// "metadata.user.tier" or "input.0.content", and whether it exists.
	Field(path string) (any, bool)
}

// Enricher adds properties to an event.
//
// Enrich calls done exactly once, when the event is complete. It may call
// done before it returns, which is the fast path when no lookup is needed,
// or later from another goroutine. An enricher never fails an event: a
// property it cannot resolve is left out and the event is marked with
// event.PropPartial.
type Enricher interface {
	Enrich(ctx context.Context, ev *event.Event, rec Record, done func())
}
