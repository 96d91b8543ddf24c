package lookup

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/llm-enricher/enricher/internal/kafkaconn"
)

// kafkaTable is a compacted topic read into memory: the latest value of
// each record key, with tombstones (records without a value) deleting
// their key. A plain consumer reads every partition from the beginning and
// keeps following it.
type kafkaTable struct {
	topic  string
	client *kgo.Client
	logger *slog.Logger

	mu   sync.RWMutex
	rows map[string]any

	// caughtUp is closed once every partition was read up to the end
	// offsets listed at start.
	caughtUp chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// listRetry is the pause after the first failed attempt to list the topic's
// end offsets at start. It doubles after each further failure, up to
// listRetryMax, so that a broker that keeps rejecting the credentials gets
// a log line a minute rather than one a second.
const (
	listRetry    = time.Second
	listRetryMax = time.Minute
)

func startKafkaTable(topic string, kafkaOpts []kgo.Opt, logger *slog.Logger) (*kafkaTable, error) {
	logger = logger.With("topic", topic)
	opts := []kgo.Opt{kgo.WithLogger(kafkaconn.CollapseRepeats(kslog.New(logger)))}
	opts = append(opts, kafkaOpts...)
	opts = append(opts,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Records of aborted transactions never enter the table, and the
		// control records that end transactions still advance the
		// position used to tell when the table caught up.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client for topic %s: %w", topic, err)
	}

	t := &kafkaTable{
		topic:    topic,
		client:   client,
		logger:   logger,
		rows:     make(map[string]any),
		caughtUp: make(chan struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(1)
	go t.run()
	return t, nil
}

func (t *kafkaTable) get(key string) (any, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.rows[key]
	return v, ok
}

func (t *kafkaTable) ready() <-chan struct{} { return t.caughtUp }

func (t *kafkaTable) close() {
	t.cancel()
	t.wg.Wait()
	t.client.Close()
}

func (t *kafkaTable) run() {
	defer t.wg.Done()
	t.logger.Info("loading lookup table from Kafka")

	ends, ok := t.listEnds()
	if !ok {
		return
	}
	ends = t.checkCaughtUp(ends)

	var lastWarn time.Time
	for {
		fetches := t.client.PollFetches(t.ctx)
		if t.ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(_ string, partition int32, err error) {
			if time.Since(lastWarn) >= warnInterval {
				lastWarn = time.Now()
				t.logger.Warn("fetching lookup table failed; retrying", "partition", partition, "err", err)
			}
		})
		fetches.EachRecord(t.apply)
		if ends != nil {
			fetches.EachPartition(func(p kgo.FetchTopicPartition) {
				if n := len(p.Records); n > 0 && p.Records[n-1].Offset+1 >= ends[p.Partition] {
					delete(ends, p.Partition)
				}
			})
			ends = t.checkCaughtUp(ends)
		}
	}
}

// listEnds returns, per partition, the offset the table must reach before
// it counts as caught up. Partitions that hold no records are left out.
// It retries until it succeeds or the table is closed.
func (t *kafkaTable) listEnds() (map[int32]int64, bool) {
	admin := kadm.NewClient(t.client)
	wait := listRetry
	for attempt := 1; ; attempt++ {
		ends, err := t.listEndsOnce(admin)
		if err == nil {
			return ends, true
		}
		t.logger.Warn("listing lookup table offsets failed; lookups wait for their deadline until it succeeds",
			"attempt", attempt, "retry_in", wait.String(), "err", err)
		select {
		case <-t.ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
		wait = min(2*wait, listRetryMax)
	}
}

func (t *kafkaTable) listEndsOnce(admin *kadm.Client) (map[int32]int64, error) {
	// The last stable offset is the end that a read-committed consumer
	// reaches.
	ends, err := admin.ListCommittedOffsets(t.ctx, t.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", t.topic, err)
	}
	starts, err := admin.ListStartOffsets(t.ctx, t.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing start offsets of %s: %w", t.topic, err)
	}
	if len(ends[t.topic]) == 0 {
		return nil, fmt.Errorf("listing end offsets of %s: topic has no partitions", t.topic)
	}

	targets := make(map[int32]int64)
	for partition, end := range ends[t.topic] {
		start, _ := starts.Lookup(t.topic, partition)
		if end.Offset > start.Offset {
			targets[partition] = end.Offset
		}
	}
	return targets, nil
}

// checkCaughtUp marks the table ready when no partition is left to read,
// and then returns nil.
func (t *kafkaTable) checkCaughtUp(ends map[int32]int64) map[int32]int64 {
	if len(ends) > 0 {
		return ends
	}
	t.mu.RLock()
	n := len(t.rows)
	t.mu.RUnlock()
	t.logger.Info("lookup table caught up", "entries", n)
	close(t.caughtUp)
	return nil
}

// apply stores one record: a JSON value replaces the key's value, and a
// tombstone deletes it. A value that is not JSON is skipped and the key
// keeps its previous value.
func (t *kafkaTable) apply(r *kgo.Record) {
	if r.Attrs.IsControl() {
		return
	}
	if r.Key == nil {
		t.logger.Warn("skipping lookup table record without a key", "partition", r.Partition, "offset", r.Offset)
		return
	}
	key := string(r.Key)
	if r.Value == nil {
		t.mu.Lock()
		delete(t.rows, key)
		t.mu.Unlock()
		return
	}

	value, err := decodeJSON(r.Value)
	if err != nil {
		t.logger.Warn("skipping lookup table record that is not JSON", "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	t.mu.Lock()
	t.rows[key] = value
	t.mu.Unlock()
}
