// Package dlq writes records that can never become events to a dead-letter
// topic, unchanged, with headers that say why and where they came from.
package dlq

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys the writer adds to each dead-lettered record.
const (
	HeaderError     = "enricher.error"
	HeaderTopic     = "enricher.source.topic"
	HeaderPartition = "enricher.source.partition"
	HeaderOffset    = "enricher.source.offset"
)

// BatchedMaxBytes is the size of the largest dead letter (key, value and
// headers) that goes through the batching producer. It is franz-go's
// default batch limit of 1,000,012 bytes less 1 KiB for the record's
// framing. That limit is below Kafka's default max.message.bytes, so a
// batch of dead letters fits a topic with the default.
const BatchedMaxBytes = 1_000_012 - 1<<10

// LargeMaxBytes is the batch limit for the producer of large dead letters.
// It is franz-go's default limit on one write to a broker, 100 MiB, the
// same as Kafka's default socket.request.max.bytes.
const LargeMaxBytes = 100 << 20

// Producer produces records; *kgo.Client implements it.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Writer writes dead letters.
type Writer struct {
	topic string
	p     Producer
	// large writes the dead letters above BatchedMaxBytes, one at a time,
	// so that each is a batch of its own. The broker then checks the record
	// alone, compressed, against the topic's max.message.bytes. Small dead
	// letters never share a batch with a large one.
	large Producer
	// largeSlot is a semaphore of one: it contains a token while a large
	// dead letter is being written.
	largeSlot chan struct{}
	log       *slog.Logger
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin, RetryMax time.Duration
}

// New returns a writer to topic that produces with p. When large is not
// nil, it produces the dead letters above BatchedMaxBytes and needs a batch
// limit of LargeMaxBytes. Without it, p produces them and may reject them
// as too large.
func New(p, large Producer, topic string, log *slog.Logger) *Writer {
	return &Writer{
		topic: topic, p: p, large: large, largeSlot: make(chan struct{}, 1), log: log,
		RetryMin: 500 * time.Millisecond, RetryMax: 30 * time.Second,
	}
}

// Write produces a copy of src to the dead-letter topic: the same key,
// value and headers, plus headers naming cause and the source. It retries
// until the broker acknowledges the write, and calls done(true) then. It
// calls done(false) when ctx ends first, so that the source record stays
// uncommitted.
func (w *Writer) Write(ctx context.Context, src *kgo.Record, cause error, done func(ok bool)) {
	r := &kgo.Record{
		Topic:   w.topic,
		Key:     src.Key,
		Value:   src.Value,
		Headers: append(append([]kgo.RecordHeader(nil), src.Headers...), headers(src, cause)...),
	}
	w.produce(ctx, r, src, 1, done)
}

func (w *Writer) produce(ctx context.Context, r, src *kgo.Record, attempt int, done func(bool)) {
	promise := func(_ *kgo.Record, err error) { w.produced(ctx, r, src, attempt, err, done) }
	if w.large == nil || size(r) <= BatchedMaxBytes {
		w.p.Produce(ctx, r, promise)
		return
	}
	go func() {
		select {
		case w.largeSlot <- struct{}{}:
		case <-ctx.Done():
			done(false)
			return
		}
		w.large.Produce(ctx, r, func(r *kgo.Record, err error) {
			<-w.largeSlot
			promise(r, err)
		})
	}()
}

// produced handles the outcome of one attempt. It calls done on success or
// once ctx has ended, and otherwise tries again after a backoff.
func (w *Writer) produced(ctx context.Context, r, src *kgo.Record, attempt int, err error, done func(bool)) {
	if err == nil {
		w.log.Debug("record dead-lettered", "topic", src.Topic, "partition", src.Partition, "offset", src.Offset)
		done(true)
		return
	}
	if ctx.Err() != nil {
		done(false)
		return
	}
	delay := min(w.RetryMin<<min(attempt-1, 16), w.RetryMax)
	if errors.Is(err, kerr.MessageTooLarge) {
		// Retries fail until the topic's limit is raised, and the
		// partition waits for this record, so the log names the setting.
		w.log.Error("the dead-letter topic rejected a record as too large, and its partition waits: "+
			"raise the topic's max.message.bytes to at least the source topic's",
			"err", err, "bytes", size(r), "dlq_topic", w.topic, "topic", src.Topic, "partition", src.Partition,
			"offset", src.Offset, "attempt", attempt, "retry_in", delay)
	} else {
		w.log.Warn("writing to the dead-letter topic failed; retrying",
			"err", err, "dlq_topic", w.topic, "topic", src.Topic, "partition", src.Partition,
			"offset", src.Offset, "attempt", attempt, "retry_in", delay)
	}
	go func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			w.produce(ctx, r, src, attempt+1, done)
		case <-ctx.Done():
			done(false)
		}
	}()
}

// size returns the bytes of a record's key, value and headers.
func size(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func headers(src *kgo.Record, cause error) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderError, Value: []byte(cause.Error())},
		{Key: HeaderTopic, Value: []byte(src.Topic)},
		{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		{Key: HeaderOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
	}
}
