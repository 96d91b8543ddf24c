package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/llm-enricher/enricher/internal/consume"
	"github.com/llm-enricher/enricher/internal/metrics"
)

// maxEndOffsetsInterval bounds the wait between two listings of the end
// offsets.
const maxEndOffsetsInterval = 30 * time.Second

// endOffsetsInterval lists end offsets four times per progress timeout, so
// that a stall is seen well within it, and at least every 30 seconds.
func endOffsetsInterval(progressTimeout time.Duration) time.Duration {
	return min(progressTimeout/4, maxEndOffsetsInterval)
}

// watchEndOffsets lists the end offsets of topics every interval and hands
// them to the consumer and to the lag metrics. The poll loop reports high
// watermarks too, but only while it fetches: a stuck poll loop would see
// neither new records nor growing lag. stop waits for the watcher to end.
func watchEndOffsets(ctx context.Context, cons *consume.Consumer, obs *metrics.Consumer,
	topics []string, interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	adm := kadm.NewClient(cons.Client())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				listEndOffsets(ctx, adm, cons, obs, topics, interval, log)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

func listEndOffsets(ctx context.Context, adm *kadm.Client, cons *consume.Consumer, obs *metrics.Consumer,
	topics []string, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The lag metrics count from the high watermark, so that records
	// held up behind an open transaction show as lag. The backlog counts
	// only what the consumer can read: up to the last stable offset, which
	// kadm calls the committed offset.
	listEach(ctx, adm.ListEndOffsets, topics, log, func(o kadm.ListedOffset) {
		obs.HighWatermark(o.Topic, o.Partition, o.Offset)
	})
	listEach(ctx, adm.ListCommittedOffsets, topics, log, func(o kadm.ListedOffset) {
		cons.SetEndOffset(o.Topic, o.Partition, o.Offset)
	})
}

// listEach calls fn with each offset that list returns.
func listEach(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error),
	topics []string, log *slog.Logger, fn func(kadm.ListedOffset)) {
	listed, err := list(ctx, topics...)
	if err != nil {
		// The connection check reports an unreachable cluster; this is
		// only the detail.
		log.Debug("listing end offsets failed", "err", err)
		return
	}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			log.Debug("listing end offset failed", "err", o.Err, "topic", o.Topic, "partition", o.Partition)
			return
		}
		fn(o)
	})
}
