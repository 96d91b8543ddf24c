// Package pipeline turns each Kafka record into an enriched PostHog event
// and resolves the record once the event is delivered, or once the record
// is in the dead-letter topic.
package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/dlq"
	"github.com/llm-enricher/enricher/internal/enrich"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/record"
	"github.com/llm-enricher/enricher/internal/sink"
)

// Pipeline implements consume.Handler.
type Pipeline struct {
	// ctx ends at shutdown, when retries of dead-letter writes stop.
	ctx      context.Context
	decoder  record.Decoder
	enricher enrich.Enricher
	sink     sink.Sink
	dlq      *dlq.Writer
	log      *slog.Logger
	hooks    Hooks
	// jobs feeds the workers; nil means Handle works on the caller's
	// goroutine.
	jobs chan job
	// queueMu guards queueClosed, which is set once the context ends and
	// no record may enter jobs any more.
	queueMu     sync.RWMutex
	queueClosed bool
	// resumed hands the workers the events whose enrichment finished on
	// another goroutine. It is unbuffered, so that an event is either taken
	// by a worker or sent by its own goroutine, never left in a buffer.
	resumed chan *enriching

	abandoned atomic.Int64
}

// Hooks observe outcomes, for metrics. Any field may be nil.
type Hooks struct {
	// Consumed is called for each record handed to the pipeline.
	Consumed func()
	// Delivered is called for each event PostHog accepted, with the time
	// since the event was handed to the sink.
	Delivered func(ev *event.Event, latency time.Duration)
	// DeadLettered is called for each record written to the dead-letter
	// topic, with a short reason: "decode", "too_large" or "rejected".
	DeadLettered func(reason string)
	// Truncated is called for each event shortened to fit.
	Truncated func()
	// Partial is called for each event sent with a lookup missing.
	Partial func()
}

// Config holds a Pipeline's parts.
type Config struct {
	Decoder  record.Decoder
	Enricher enrich.Enricher
	Sink     sink.Sink
	DLQ      *dlq.Writer
	Logger   *slog.Logger
	Hooks    Hooks
	// Workers is how many records are decoded, enriched and handed to the
	// sink at once, each on a goroutine of its own. Zero or one means
	// Handle does the work before it returns.
	Workers int
}

// New returns a pipeline. ctx bounds dead-letter retries and lookups.
func New(ctx context.Context, cfg Config) *Pipeline {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Pipeline{
		ctx:      ctx,
		decoder:  cfg.Decoder,
		enricher: cfg.Enricher,
		sink:     cfg.Sink,
		dlq:      cfg.DLQ,
		log:      cfg.Logger,
		hooks:    cfg.Hooks,
	}
	if cfg.Workers > 1 {
		p.startWorkers(cfg.Workers)
	}
	return p
}

// Abandoned returns how many records were given up at shutdown, neither
// delivered nor dead-lettered.
func (p *Pipeline) Abandoned() int64 { return p.abandoned.Load() }

// Handle implements consume.Handler. With several workers, it queues the
// record for the next free worker. Records then reach the sink out of
// order, which the consumer's offset tracking allows for: it commits a
// partition only up to its lowest unresolved record.
func (p *Pipeline) Handle(r *kgo.Record, done func(resolved bool)) {
	if p.jobs != nil {
		p.dispatch(r, done)
		return
	}
	p.process(r, done)
}

// process decodes and enriches r and sends its event to the sink.
func (p *Pipeline) process(r *kgo.Record, done func(resolved bool)) {
	call(p.hooks.Consumed)
	src := event.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	ev, fields, err := p.decoder.Decode(record.Input{Value: r.Value, Source: src, Timestamp: r.Timestamp})
	if err != nil {
		p.deadLetter(r, "decode", err, done)
		return
	}
	e := &enriching{p: p, r: r, ev: ev, done: done}
	p.enricher.Enrich(p.ctx, ev, fields, e.complete)
	e.state.CompareAndSwap(enrichRunning, enrichWaiting)
}

// Enrichment states of a record.
const (
	enrichRunning  int32 = iota // Enrich has not returned yet
	enrichWaiting               // Enrich returned and a lookup is pending
	enrichComplete              // done was called while Enrich ran
)

// enriching is a record between Enrich and the sink.
type enriching struct {
	p     *Pipeline
	r     *kgo.Record
	ev    *event.Event
	done  func(bool)
	state atomic.Int32
}

// complete sends the enriched event. When Enrich finished on the worker,
// the worker sends it at once. When a lookup finished later, on a
// goroutine of its own, a worker takes the event over: handing an event
// to posthog-go encodes it, which needs a deep stack, and the workers'
// stacks have grown to that size already.
//
// NOTE: complete must not run on a worker after Enrich returned, or the
// worker would wait for another to take the event. The enrich package
// calls done on the worker only before Enrich returns.
func (e *enriching) complete() {
	if e.state.CompareAndSwap(enrichRunning, enrichComplete) || e.p.resumed == nil {
		e.p.send(e.r, e.ev, e.done)
		return
	}
	select {
	case e.p.resumed <- e:
	case <-e.p.ctx.Done():
		e.p.send(e.r, e.ev, e.done)
	}
}

func (p *Pipeline) send(r *kgo.Record, ev *event.Event, done func(bool)) {
	if err := event.Fit(ev, event.MaxBytes); err != nil {
		p.deadLetter(r, "too_large", err, done)
		return
	}
	if ev.Properties[event.PropTruncated] == true {
		call(p.hooks.Truncated)
	}
	if ev.Properties[event.PropPartial] == true {
		call(p.hooks.Partial)
	}
	start := time.Now()
	p.sink.Send(ev, func(err error) {
		switch {
		case err == nil:
			if p.hooks.Delivered != nil {
				p.hooks.Delivered(ev, time.Since(start))
			}
			done(true)
		case errors.Is(err, sink.ErrRejected):
			p.deadLetter(r, "rejected", err, done)
		default:
			p.abandoned.Add(1)
			done(false)
		}
	})
}

func (p *Pipeline) deadLetter(r *kgo.Record, reason string, cause error, done func(bool)) {
	p.log.Debug("dead-lettering record", "err", cause, "reason", reason,
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
	p.dlq.Write(p.ctx, r, cause, func(ok bool) {
		if ok {
			if p.hooks.DeadLettered != nil {
				p.hooks.DeadLettered(reason)
			}
		} else {
			p.abandoned.Add(1)
		}
		done(ok)
	})
}

func call(f func()) {
	if f != nil {
		f()
	}
}
