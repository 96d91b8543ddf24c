package bench

import (
	"context"
	"encoding/json"
	"time"

	"github.com/posthog/posthog-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// naiveAIFields are the record fields that the naive peer sends with the
// "$ai_" prefix.
var naiveAIFields = map[string]bool{
	"provider": true, "model": true, "input": true, "output_choices": true,
	"input_tokens": true, "output_tokens": true, "http_status": true,
	"trace_id": true,
}

// runNaive is the obvious way to build the enricher: a franz-go consumer
// group with auto-commit, encoding/json into a map, and one posthog-go
// client with default settings. It waits while posthog-go's queue is full,
// where the obvious code would drop the event, so that it delivers every
// record as the enricher does. It leaves the event uuid to posthog-go.
func runNaive(ctx context.Context, spec ChildSpec, w *window) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(spec.Brokers...),
		kgo.ConsumerGroup(spec.Group),
		kgo.ConsumeTopics(spec.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	client, err := posthog.NewWithConfig(spec.APIKey, posthog.Config{Endpoint: spec.CaptureURL})
	if err != nil {
		return err
	}
	defer client.Close()

	go func() {
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				if msg, ok := naiveEvent(r.Value); ok {
					enqueueRetrying(ctx, client, msg)
				}
			})
		}
	}()
	return w.pollCapture(ctx)
}

func naiveEvent(value []byte) (posthog.Capture, bool) {
	var m map[string]any
	if err := json.Unmarshal(value, &m); err != nil {
		return posthog.Capture{}, false
	}
	props := posthog.NewProperties()
	for k, v := range m {
		switch {
		case naiveAIFields[k]:
			props.Set("$ai_"+k, v)
		case k == "latency_ms":
			if ms, ok := v.(float64); ok {
				props.Set("$ai_latency", ms/1000)
			}
		case k == "properties":
			if custom, ok := v.(map[string]any); ok {
				for ck, cv := range custom {
					props.Set(ck, cv)
				}
			}
		}
	}
	distinctID, _ := m["distinct_id"].(string)
	ts, _ := m["timestamp"].(string)
	at, _ := time.Parse(time.RFC3339Nano, ts)
	return posthog.Capture{
		DistinctId: distinctID,
		Event:      "$ai_generation",
		Timestamp:  at,
		Properties: props,
	}, distinctID != ""
}
