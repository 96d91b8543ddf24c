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
	// polled is called with each poll's record count; nil means nothing.
	polled func(n int)

	mu    sync.Mutex
	parts map[topicPartition]*offsets
}

type topicPartition struct {
	topic     string
	partition int32
}

// offsets are what is known of one partition; -1 means not yet known.
type offsets struct {
	committed, end int64
	label          string
}

// Consumer returns the consume.Observer of these metrics. polled, when
// set, is also called with each poll's record count.
func (m *Metrics) Consumer(polled func(n int)) *Consumer {
	return &Consumer{m: m, polled: polled, parts: make(map[topicPartition]*offsets)}
}

// Polled implements consume.Observer.
func (c *Consumer) Polled(n int) {
	c.m.pollSize.Observe(float64(n))
	if c.polled != nil {
		c.polled(n)
	}
}

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
	})
}

// update applies f to an assigned partition and refreshes its lag. Reports
// about a partition that is no longer assigned, such as a commit that
// finished after the revoke, are dropped so that no stale series remains.
//
// NOTE: the lag is exported only once this member has committed the
// partition, because the consumer does not report the offset it started
// from.
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
