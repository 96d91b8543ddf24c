// Package consume reads records from Kafka in a consumer group, hands each
// one to a Handler, and commits a partition's offset only up to the lowest
// record the Handler has not yet resolved.
package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/semaphore"
)

// Handler processes records. Handle must not block for long: it starts the
// work and returns. It calls done exactly once per record, with true when
// the record is resolved (delivered, or written to the dead-letter topic)
// and may be committed, or false when it was abandoned at shutdown and must
// be read again after a restart.
type Handler interface {
	Handle(r *kgo.Record, done func(resolved bool))
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(r *kgo.Record, done func(resolved bool))

// Handle implements Handler.
func (f HandlerFunc) Handle(r *kgo.Record, done func(resolved bool)) { f(r, done) }

// Config configures a Consumer.
type Config struct {
	// Opts are the client options: brokers, security, logging.
	Opts []kgo.Opt
	// Topics are the topics to consume.
	Topics []string
	// Group is the consumer group.
	Group string
	// RebalanceTimeout is how long the group waits for members to rejoin
	// during a rebalance.
	RebalanceTimeout time.Duration
	// SessionTimeout is how long the group keeps a silent member.
	SessionTimeout time.Duration
	// RevokeTimeout bounds the wait, when partitions are revoked, for their
	// records in flight to resolve before the final commit. It must be
	// shorter than RebalanceTimeout.
	RevokeTimeout time.Duration
	// CommitInterval is how often resolved offsets are committed.
	CommitInterval time.Duration
	// MaxInFlight bounds the records handed to the Handler and not yet done.
	MaxInFlight int
	// MaxInFlightBytes bounds the value bytes of those records.
	MaxInFlightBytes int64
	// Hold, when set, is checked before each poll; while it returns an
	// error, no new records are fetched.
	Hold func() error
	// Logger receives starts, stops, rebalances and commit errors.
	Logger *slog.Logger
	// Observer, when set, is told about progress. See Observer.
	Observer Observer
	// Skipped, when set, is called with the number of polled records that
	// were resolved without being handed to the Handler, which are the
	// markers that end transactions. Each is progress on its partition.
	Skipped func(n int)
}

// Observer receives consumer progress, for metrics and health.
type Observer interface {
	// Polled is called with each batch of records handed to the Handler.
	Polled(n int)
	// Committed is called after a successful commit of a partition.
	Committed(topic string, partition int32, offset int64)
	// HighWatermark is called with each partition's high watermark as
	// fetched.
	HighWatermark(topic string, partition int32, offset int64)
	// Assigned and Revoked are called as the group moves partitions.
	Assigned(topic string, partitions []int32)
	Revoked(topic string, partitions []int32)
}

// Consumer is a consumer group member.
type Consumer struct {
	cfg     Config
	cl      *kgo.Client
	handler Handler
	log     *slog.Logger

	count *semaphore.Weighted
	bytes *semaphore.Weighted
	// handed counts the records handed to the Handler and not yet done.
	handed atomic.Int64

	mu    sync.Mutex
	parts map[string]map[int32]*partition

	// commitMu makes commits and revokes take turns, so that a periodic
	// commit that read offsets before a revoke never lands after it.
	commitMu sync.Mutex

	joined chan struct{}
	once   sync.Once
	// closing stops revokes from waiting for records that can no longer
	// resolve: at Close, the sink has already given them up.
	closing atomic.Bool
}

// New creates a consumer; it starts fetching in Run.
func New(cfg Config, h Handler) (*Consumer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	c := &Consumer{
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger,
		count:   semaphore.NewWeighted(int64(cfg.MaxInFlight)),
		bytes:   semaphore.NewWeighted(cfg.MaxInFlightBytes),
		parts:   make(map[string]map[int32]*partition),
		joined:  make(chan struct{}),
	}
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		// A new group starts at the oldest record: nothing published before
		// the first deploy is skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Read committed records only, because the producer withdrew the
		// records of an aborted transaction. Transaction markers take
		// offsets, so they come with the records and commits can pass them.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	}, cfg.Opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client: %w", err)
	}
	c.cl = cl
	return c, nil
}

// Client returns the Kafka client, for producing to the dead-letter topic.
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Joined is closed once the consumer has been assigned partitions for the
// first time.
func (c *Consumer) Joined() <-chan struct{} { return c.joined }

// Run polls records and hands them to the Handler until ctx ends. Records
// polled but not yet handed over when ctx ends stay uncommitted.
func (c *Consumer) Run(ctx context.Context) error {
	commitCtx, stopCommits := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { c.commitLoop(commitCtx) })
	defer func() {
		stopCommits()
		wg.Wait()
	}()

	c.log.Info("consuming", "topics", c.cfg.Topics, "group", c.cfg.Group)
	var backoff time.Duration
	for {
		if err := c.waitForRoom(ctx); err != nil {
			return nil
		}
		fetches := c.cl.PollRecords(ctx, c.room())
		if fetches.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			return nil
		}
		recs, skipped, failed := c.register(fetches)
		// Every polled record is registered: a rebalance may run from here
		// on, and a revoke sees all records it has to wait for.
		c.cl.AllowRebalance()
		c.cfg.Observer.Polled(len(recs))
		if skipped > 0 && c.cfg.Skipped != nil {
			c.cfg.Skipped(skipped)
		}

		// A fetch error comes back at once on every poll until its cause
		// goes away, so a poll that brought only errors waits before the
		// next, instead of spinning.
		if failed && len(recs) == 0 {
			backoff = min(max(2*backoff, minFetchBackoff), maxFetchBackoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0

		for _, r := range recs {
			if err := c.handle(ctx, r); err != nil {
				return nil
			}
		}
	}
}

// Bounds of the wait between polls that bring only fetch errors.
const (
	minFetchBackoff = 100 * time.Millisecond
	maxFetchBackoff = 5 * time.Second
)

// register tracks the polled records of assigned partitions, and returns
// the records to hand over, how many records it resolved itself, and
// whether any partition reported a fetch error.
func (c *Consumer) register(fetches kgo.Fetches) (recs []*kgo.Record, skipped int, failed bool) {
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err != nil {
			failed = c.fetchError(p) || failed
			return
		}
		c.cfg.Observer.HighWatermark(p.Topic, p.Partition, p.HighWatermark)
		part := c.partition(p.Topic, p.Partition)
		if part == nil {
			return
		}
		for _, r := range p.Records {
			if r.Attrs.IsControl() {
				// A transaction marker needs no handling.
				if part.skip(r) {
					skipped++
				}
				continue
			}
			if part.add(r) {
				recs = append(recs, r)
			}
		}
		part.setEnd(readableEnd(p.FetchPartition))
	})
	return recs, skipped, failed
}

// readableEnd returns the end of what a read-committed consumer can read
// of a partition: the last stable offset, before which every transaction
// is committed or aborted, else the high watermark.
func readableEnd(p kgo.FetchPartition) int64 {
	if p.LastStableOffset >= 0 {
		return p.LastStableOffset
	}
	return p.HighWatermark
}

// room returns how many records may be polled now: the free places under
// MaxInFlight, and at least one, because waitForRoom saw a free place.
// Polling no more than that keeps records that wait for the Handler out of
// memory, where only the fetch buffer bounds them.
func (c *Consumer) room() int {
	return max(1, c.cfg.MaxInFlight-int(c.handed.Load()))
}

// waitForRoom blocks while the in-flight limit is reached or Hold says so.
func (c *Consumer) waitForRoom(ctx context.Context) error {
	if err := c.count.Acquire(ctx, 1); err != nil {
		return err
	}
	c.count.Release(1)
	if c.cfg.Hold == nil {
		return nil
	}
	for {
		err := c.cfg.Hold()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// handle waits for room in the in-flight limits and hands r over.
func (c *Consumer) handle(ctx context.Context, r *kgo.Record) error {
	p := c.partition(r.Topic, r.Partition)
	if p == nil {
		// Revoked while the record waited here: its next owner reads it.
		return nil
	}
	size := min(int64(len(r.Value)), c.cfg.MaxInFlightBytes)
	if err := c.count.Acquire(ctx, 1); err != nil {
		return err
	}
	if err := c.bytes.Acquire(ctx, size); err != nil {
		c.count.Release(1)
		return err
	}
	c.handed.Add(1)
	var once sync.Once
	c.handler.Handle(r, func(resolved bool) {
		once.Do(func() {
			if resolved {
				p.resolve(r.Offset)
			}
			c.handed.Add(-1)
			c.bytes.Release(size)
			c.count.Release(1)
		})
	})
	return nil
}

func (c *Consumer) partition(topic string, part int32) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts[topic][part]
}

// fetchError logs a failed fetch and marks its partition, and reports
// whether it was a failure rather than a shutdown.
func (c *Consumer) fetchError(p kgo.FetchTopicPartition) bool {
	if errors.Is(p.Err, context.Canceled) {
		return false
	}
	if part := c.partition(p.Topic, p.Partition); part != nil {
		part.fetchFailed(time.Now())
	}
	c.log.Warn("fetching failed", "err", p.Err, "topic", p.Topic, "partition", p.Partition)
	return true
}

// Drain waits until every record handed to the Handler is done, or ctx
// ends, and returns how many are still in flight.
func (c *Consumer) Drain(ctx context.Context) int {
	max := int64(c.cfg.MaxInFlight)
	if err := c.count.Acquire(ctx, max); err != nil {
		return c.inFlight()
	}
	c.count.Release(max)
	return 0
}

// Backlog returns how many records of the assigned partitions are not yet
// resolved: handed to the Handler and not done, or behind the last stable
// offset and not yet polled. Records of an open transaction, and those
// after them, do not count: no consumer can read them until it ends. For
// a partition with nothing polled since it was assigned, those records
// count from the group's committed offset. A partition that the group
// never committed counts none of them.
func (c *Consumer) Backlog() int64 {
	committed := c.cl.CommittedOffsets()
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for topic, parts := range c.parts {
		for part, p := range parts {
			start := int64(-1)
			if eo, ok := committed[topic][part]; ok {
				start = eo.Offset
			}
			n += p.backlog(start)
		}
	}
	return n
}

// SetEndOffset records the last stable offset of a partition as listed
// by a broker, so that Backlog counts records that no fetch has reported,
// as when the poll loop is stuck. Offsets of partitions not assigned are
// ignored.
func (c *Consumer) SetEndOffset(topic string, part int32, offset int64) {
	if p := c.partition(topic, part); p != nil {
		p.setEnd(offset)
	}
}

// inFlight counts the records handed over and not done.
func (c *Consumer) inFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, parts := range c.parts {
		for _, p := range parts {
			n += p.unresolved()
		}
	}
	return n
}

// Close commits what is resolved, leaves the group and closes the client.
// Call it after Run has returned.
func (c *Consumer) Close(ctx context.Context) {
	c.closing.Store(true)
	c.commit(ctx)
	c.cl.AllowRebalance()
	if err := c.cl.LeaveGroupContext(ctx); err != nil {
		c.log.Warn("leaving the consumer group failed; the group evicts this member after the session timeout", "err", err, "group", c.cfg.Group)
	} else {
		c.log.Info("left the consumer group", "group", c.cfg.Group)
	}
	c.cl.Close()
}

type nopObserver struct{}

func (nopObserver) Polled(int)                         {}
func (nopObserver) Committed(string, int32, int64)     {}
func (nopObserver) HighWatermark(string, int32, int64) {}
func (nopObserver) Assigned(string, []int32)           {}
func (nopObserver) Revoked(string, []int32)            {}
