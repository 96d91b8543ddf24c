// Package dlq writes records that can never become events to a dead-letter
// topic, unchanged, with headers that say why and where they came from.
package dlq

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys the writer adds to each dead-lettered record.
const (
	HeaderError     = "enricher.error"
	HeaderTopic     = "enricher.source.topic"
	HeaderPartition = "enricher.source.partition"
	HeaderOffset    = "enricher.source.offset"
)

// Producer produces records; *kgo.Client implements it.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Writer writes dead letters.
type Writer struct {
	topic string
	p     Producer
	log   *slog.Logger
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin, RetryMax time.Duration
}

// New returns a writer to topic.
func New(p Producer, topic string, log *slog.Logger) *Writer {
	return &Writer{topic: topic, p: p, log: log, RetryMin: 500 * time.Millisecond, RetryMax: 30 * time.Second}
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
	w.p.Produce(ctx, r, func(_ *kgo.Record, err error) {
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
		w.log.Warn("writing to the dead-letter topic failed; retrying",
			"err", err, "dlq_topic", w.topic, "topic", src.Topic, "partition", src.Partition,
			"offset", src.Offset, "attempt", attempt, "retry_in", delay)
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
	})
}

func headers(src *kgo.Record, cause error) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderError, Value: []byte(cause.Error())},
		{Key: HeaderTopic, Value: []byte(src.Topic)},
		{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		{Key: HeaderOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
	}
}
