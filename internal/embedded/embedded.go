// Package embedded runs an in-process Kafka broker (kfake) on 127.0.0.1 with
// the enricher's topics and sample records, so that the enricher runs
// without a cluster. Any Kafka client, kcat included, can publish to it.
package embedded

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/examples"
)

// Partitions is the partition count of each topic the broker creates.
const Partitions = 3

// Start starts a broker on addr, which must be on 127.0.0.1, creates the
// topics, and publishes the sample records to the first one.
func Start(ctx context.Context, addr string, topics []string) (*kfake.Cluster, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("invalid embedded broker address %q: want 127.0.0.1:port", addr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("invalid embedded broker port %q", portText)
	}
	cluster, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(Partitions, topics...))
	if err != nil {
		return nil, fmt.Errorf("starting embedded broker on %s: %w", addr, err)
	}
	if err := seed(ctx, cluster.ListenAddrs(), topics[0]); err != nil {
		cluster.Close()
		return nil, err
	}
	return cluster, nil
}

// seed publishes the sample records, keyed by line number so that they
// spread over the partitions.
func seed(ctx context.Context, brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return fmt.Errorf("creating seed producer: %w", err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i, line := range bytes.Split(bytes.TrimSpace(examples.Records), []byte("\n")) {
		recs = append(recs, &kgo.Record{Key: strconv.AppendInt(nil, int64(i), 10), Value: line})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publishing sample records: %w", err)
	}
	return nil
}
