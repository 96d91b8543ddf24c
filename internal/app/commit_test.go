package app

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// The commit stays at a record that is still being retried while the
// records after it are delivered, and moves past them all once it is.
func TestCommitWaitsForRetriedRecord(t *testing.T) {
	const n, stuck = 15, 12
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	stuckUUID := event.ID("c-12", event.Source{})
	var outage atomic.Bool
	outage.Store(true)
	h.capture.Unavailable(func(ev capturetest.Event) bool {
		return outage.Load() && ev.UUID == stuckUUID
	})
	k.ProduceValues(topic, records("c", n)...)
	h.start(map[string]string{"ENRICHER_POSTHOG_BATCH_SIZE": "1"})

	kafkatest.Eventually(t, 30*time.Second, "every record but the stuck one delivered", func() bool {
		return len(h.capture.UUIDs()) == n-1
	})
	kafkatest.Eventually(t, 10*time.Second, "commit up to the stuck record", func() bool {
		return k.Committed(group, topic)[0] == stuck
	})
	time.Sleep(500 * time.Millisecond) // five commit intervals
	if c := k.Committed(group, topic)[0]; c != stuck {
		t.Fatalf("committed offset %d while offset %d is being retried, want %d", c, stuck, stuck)
	}
	if h.capture.Statuses()[503] == 0 {
		t.Fatal("the stuck record was never retried")
	}

	outage.Store(false)
	kafkatest.Eventually(t, 30*time.Second, "the stuck record delivered", func() bool {
		return h.capture.UUIDs()[stuckUUID] == 1
	})
	kafkatest.Eventually(t, 10*time.Second, "commit past every record", func() bool {
		return k.Committed(group, topic)[0] == n
	})
	logOutcome(t, h.capture, n, "c")
}

// logOutcome logs what a test sent and what arrived, for the reliability
// page, and fails the test if any record was lost. The test sent perPrefix
// records with ids prefix-0 … prefix-(perPrefix-1) for each prefix.
func logOutcome(t *testing.T, capture *capturetest.Server, perPrefix int, prefixes ...string) {
	t.Helper()
	sent, lost := perPrefix*len(prefixes), 0
	for _, prefix := range prefixes {
		lost += missing(capture, prefix, perPrefix)
	}
	if lost > 0 {
		t.Errorf("%d of %d records never arrived", lost, sent)
	}
	distinct := len(capture.UUIDs())
	delivered := len(capture.Events())
	t.Logf("outcome: sent %d, delivered %d (%d distinct), duplicated %d, lost %d",
		sent, delivered, distinct, delivered-distinct, lost)
}
