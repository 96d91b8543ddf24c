package app

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// A source topic deleted and created again gets a new topic id, which a
// running client does not adopt: every fetch fails from then on. The poll
// loop backs off instead of spinning, and liveness fails, so that a
// restart, which reads the new id, clears the fault.
func TestRecreatedTopicFailsLiveness(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	k.ProduceValues(topic, records("a", 5)...)
	addr := freeAddr(t)
	fetchFailures := countLogs(h, "fetching failed")
	h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addr}))
	kafkatest.Eventually(t, 30*time.Second, "5 events delivered", func() bool { return len(h.capture.UUIDs()) == 5 })

	adm := kadm.NewClient(k.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatalf("deleting the topic: %v", err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("creating the topic again: %v", err)
	}
	k.ProduceValues(topic, records("b", 5)...)

	kafkatest.Eventually(t, 30*time.Second, "a failed fetch", func() bool { return fetchFailures.Load() > 0 })
	start := fetchFailures.Load()
	kafkatest.Eventually(t, 30*time.Second, "healthz 503", func() bool {
		status, _ := probe(addr, "/healthz")
		return status == http.StatusServiceUnavailable
	})
	// Polling without a wait would fail thousands of times a second; the
	// backoff allows about ten in the few seconds liveness took.
	if n := fetchFailures.Load() - start; n > 100 {
		t.Errorf("%d failed fetches logged before liveness failed, want the poll loop to back off", n)
	}
}

// countLogs counts the records the harness's instances log whose message
// contains text.
func countLogs(h *harness, text string) *atomic.Int64 {
	var n atomic.Int64
	h.logHook = func(r slog.Record) {
		if strings.Contains(r.Message, text) {
			n.Add(1)
		}
	}
	return &n
}
