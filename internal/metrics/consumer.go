package metrics

import (
	"strconv"
	"sync"
)

// Consumer implements consume.Observer: it exports the committed offset,
// high watermark and lag of each assigned partition, and the size of each
// poll. Series of a partition are removed when the partition is revoked.
type Consumer struct {
	m *Metrics
	// groupOffset returns the group's committed offset of a partition as
	// the client last fetched it. It gives the lag before this member's
	// first commit, and may be nil.
	groupOffset func(topic string, partition int32) (int64, bool)

	mu    sync.Mutex
	parts map[topicPartition]*offsets
}

type topicPartition struct {
	topic     string
	partition int32
}

// offsets is the state of one assigned partition, with -1 for an offset
// not yet known.
type offsets struct {
	committed, end int64
	label          string
}

// Consumer returns the consume.Observer of these metrics. groupOffset,
// when set, returns the group's committed offset of a partition as the
// Kafka client fetched it on joining, so that lag is known before this
// member commits.
func (m *Metrics) Consumer(groupOffset func(topic string, partition int32) (int64, bool)) *Consumer {
	return &Consumer{m: m, groupOffset: groupOffset, parts: make(map[topicPartition]*offsets)}
}

// Polled implements consume.Observer.
func (c *Consumer) Polled(n int) { c.m.pollSize.Observe(float64(n)) }

// Assigned implements consume.Observer.
func (c *Consumer) Assigned(topic string, partitions []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range partitions {
		c.parts[topicPartition{topic, p}] = &offsets{committed: -1, end: -1, label: strconv.Itoa(int(p))}
	}
}

// Revoked implements consume.Observer.
func (c *Consumer) Revoked(topic string, partitions []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range partitions {
		tp := topicPartition{topic, p}
		if o := c.parts[tp]; o != nil {
			c.m.committed.DeleteLabelValues(topic, o.label)
			c.m.end.DeleteLabelValues(topic, o.label)
			c.m.lag.DeleteLabelValues(topic, o.label)
			delete(c.parts, tp)
		}
	}
}

// Committed implements consume.Observer.
func (c *Consumer) Committed(topic string, partition int32, offset int64) {
	c.update(topic, partition, func(o *offsets) {
		o.committed = max(o.committed, offset)
		c.m.committed.WithLabelValues(topic, o.label).Set(float64(o.committed))
	})
}

// HighWatermark implements consume.Observer.
func (c *Consumer) HighWatermark(topic string, partition int32, offset int64) {
	c.update(topic, partition, func(o *offsets) {
		o.end = max(o.end, offset)
		c.m.end.WithLabelValues(topic, o.label).Set(float64(o.end))
		if o.committed < 0 && c.groupOffset != nil {
			if at, ok := c.groupOffset(topic, partition); ok && at >= 0 {
				o.committed = at
				c.m.committed.WithLabelValues(topic, o.label).Set(float64(at))
			}
		}
	})
}

// update applies f to an assigned partition and refreshes its lag. Reports
// about a partition that is no longer assigned, such as a commit that
// finished after the revoke, are dropped so that no stale series remains.
//
// NOTE: a partition that the group never committed has no lag until this
// member's first commit of it.
func (c *Consumer) update(topic string, partition int32, f func(*offsets)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.parts[topicPartition{topic, partition}]
	if o == nil {
		return
	}
	f(o)
	if o.committed >= 0 && o.end >= 0 {
		c.m.lag.WithLabelValues(topic, o.label).Set(float64(max(0, o.end-o.committed)))
	}
}
