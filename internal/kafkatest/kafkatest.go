// Package kafkatest runs a kfake Kafka broker over TCP on 127.0.0.1 for
// tests, with helpers to produce records and read committed offsets.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Cluster is a running broker.
type Cluster struct {
	*kfake.Cluster
	t testing.TB
}

// New starts a broker with the topics, each with partitions partitions,
// and closes it when the test ends.
func New(t testing.TB, partitions int32, topics ...string) *Cluster {
	t.Helper()
	return NewWith(t, nil, partitions, topics...)
}

// NewWith is New with further kfake options.
func NewWith(t testing.TB, opts []kfake.Opt, partitions int32, topics ...string) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.SeedTopics(partitions, topics...)}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Cluster: c, t: t}
}

// Addrs returns the broker addresses.
func (c *Cluster) Addrs() []string { return c.ListenAddrs() }

// Client returns a plain client, closed when the test ends.
func (c *Cluster) Client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}, opts...)...)
	if err != nil {
		c.t.Fatalf("creating client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// Produce writes the records and waits for their acknowledgement.
func (c *Cluster) Produce(recs ...*kgo.Record) {
	c.t.Helper()
	cl := c.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		c.t.Fatalf("producing: %v", err)
	}
}

// ProduceValues writes one record per value to partition 0 of topic.
func (c *Cluster) ProduceValues(topic string, values ...[]byte) {
	c.t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Value: v}
	}
	cl := c.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(16<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		c.t.Fatalf("producing: %v", err)
	}
}

// Committed returns the group's committed offset of each partition of
// topic; a partition without a commit is absent.
func (c *Cluster) Committed(group, topic string) map[int32]int64 {
	c.t.Helper()
	out, err := c.CommittedE(group, topic)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// CommittedE is Committed for use off the test goroutine: it returns the
// error instead of failing the test. A group that does not exist yet has
// no commits.
func (c *Cluster) CommittedE(group, topic string) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetching offsets of group %s: %w", group, err)
	}
	out := make(map[int32]int64)
	for part, o := range resp[topic] {
		if o.Err == nil && o.At >= 0 {
			out[part] = o.At
		}
	}
	return out, nil
}

// ReadAll returns every record in topic, reading until it has seen n
// records or the timeout passes.
func (c *Cluster) ReadAll(topic string, n int, timeout time.Duration) []*kgo.Record {
	c.t.Helper()
	cl := c.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// Eventually polls cond every 20 ms until it is true, and fails the test
// with msg when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
