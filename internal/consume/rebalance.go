package consume

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Consumer) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	for topic, parts := range assigned {
		if c.parts[topic] == nil {
			c.parts[topic] = make(map[int32]*partition)
		}
		for _, p := range parts {
			c.parts[topic][p] = newPartition()
		}
	}
	c.mu.Unlock()
	for topic, parts := range assigned {
		c.log.Info("partitions assigned", "topic", topic, "partitions", parts)
		c.cfg.Observer.Assigned(topic, parts)
	}
	c.once.Do(func() { close(c.joined) })
}

// revoked gives the records in flight on the revoked partitions until
// RevokeTimeout to resolve, commits what resolved, and forgets the
// partitions. Records that resolve later are not committed by this member;
// the partition's next owner reads them again, under the same uuids.
func (c *Consumer) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if len(revoked) == 0 {
		return
	}
	deadline := time.Now().Add(c.cfg.RevokeTimeout)
	for !c.closing.Load() && c.unresolvedIn(revoked) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}

	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	commitCtx, cancel := context.WithDeadline(context.Background(), deadline.Add(5*time.Second))
	defer cancel()
	c.commitLocked(commitCtx, revoked)
	left := c.forget(revoked)
	for topic, parts := range revoked {
		c.log.Info("partitions revoked", "topic", topic, "partitions", parts)
		c.cfg.Observer.Revoked(topic, parts)
	}
	if left > 0 {
		c.log.Warn("partitions revoked with records in flight; their next owner reads them again", "records", left)
	}
}

// lost forgets the partitions without committing: the member is no longer
// in the group generation, so a commit would fail or overwrite another
// member's progress.
func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	left := c.forget(lost)
	for topic, parts := range lost {
		c.log.Warn("partitions lost", "topic", topic, "partitions", parts, "records_in_flight", left)
		c.cfg.Observer.Revoked(topic, parts)
	}
}

func (c *Consumer) unresolvedIn(set map[string][]int32) int {
	n := 0
	for topic, parts := range set {
		for _, part := range parts {
			if p := c.partition(topic, part); p != nil {
				n += p.unresolved()
			}
		}
	}
	return n
}

// forget drops the partitions and returns how many records were unresolved.
func (c *Consumer) forget(set map[string][]int32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for topic, parts := range set {
		for _, part := range parts {
			if p := c.parts[topic][part]; p != nil {
				n += p.unresolved()
				p.revoke()
				delete(c.parts[topic], part)
			}
		}
	}
	return n
}

func (c *Consumer) commitLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			commitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c.commit(commitCtx)
			cancel()
		}
	}
}

// commit commits the resolved offsets of all assigned partitions.
func (c *Consumer) commit(ctx context.Context) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.commitLocked(ctx, nil)
}

// commitLocked commits the resolved offsets of the partitions in only, or
// of all assigned partitions when only is nil. A failed commit is logged
// and tried again on the next tick; it does not stop consumption.
func (c *Consumer) commitLocked(ctx context.Context, only map[string][]int32) {
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	c.mu.Lock()
	for topic, parts := range c.parts {
		for part, p := range parts {
			if only != nil && !contains(only[topic], part) {
				continue
			}
			if eo, ok := p.committable(); ok {
				if offsets[topic] == nil {
					offsets[topic] = make(map[int32]kgo.EpochOffset)
				}
				offsets[topic][part] = eo
			}
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}

	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			c.log.Warn("committing offsets failed; retrying on the next commit", "err", err)
			return
		}
		c.committed(offsets, resp)
	})
}

// committed records each partition commit that the broker accepted.
func (c *Consumer) committed(sent map[string]map[int32]kgo.EpochOffset, resp *kmsg.OffsetCommitResponse) {
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				c.log.Warn("committing offset failed; retrying on the next commit",
					"err", err, "topic", t.Topic, "partition", rp.Partition)
				continue
			}
			offset := sent[t.Topic][rp.Partition].Offset
			if p := c.partition(t.Topic, rp.Partition); p != nil {
				p.markCommitted(offset)
			}
			c.cfg.Observer.Committed(t.Topic, rp.Partition, offset)
			c.log.Debug("committed", "topic", t.Topic, "partition", rp.Partition, "offset", offset)
		}
	}
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
