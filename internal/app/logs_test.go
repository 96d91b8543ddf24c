package app

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/kafkatest"
	"github.com/llm-enricher/enricher/internal/logging"
)

// runLogged runs the enricher with the harness environment plus extra,
// logging JSON at Info through the production logger into the returned
// buffer, until the test ends.
func runLogged(t *testing.T, h *harness, extra map[string]string) *lockedBuffer {
	t.Helper()
	environ := make(map[string]string)
	for k, v := range h.env {
		environ[k] = v
	}
	for k, v := range extra {
		environ[k] = v
	}
	cfg, err := config.Parse(environ)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var buf lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, logging.New(&buf, "json", slog.LevelInfo), io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("enricher did not stop within 60s")
		}
	})
	return &buf
}

// A dead-letter topic that cannot be written fails the write of every
// poison record again and again. The log keeps one warning per cause
// every ten seconds instead of one per record and attempt, and records
// themselves stay at Debug.
func TestRepeatedFailuresLoggedOnce(t *testing.T) {
	const poison = 200
	k := kafkatest.New(t, 1, topic) // no dead-letter topic
	h := newHarness(t, k)
	values := make([][]byte, poison)
	for i := range values {
		values[i] = []byte(`{"id":`)
	}
	k.ProduceValues(topic, values...)
	logs := runLogged(t, h, nil)

	const msg = "writing to the dead-letter topic failed; retrying"
	kafkatest.Eventually(t, 30*time.Second, "a dead-letter warning", func() bool { return strings.Contains(logs.String(), msg) })
	// Every record fails at least once more in this time, as the first
	// retry comes after 500ms.
	time.Sleep(2 * time.Second)

	var warnings, lines int
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		lines++
		if strings.Contains(l, msg) {
			warnings++
		}
		if strings.Contains(l, `"level":"DEBUG"`) {
			t.Errorf("Debug line logged at level info: %s", l)
		}
	}
	if warnings > 2 {
		t.Errorf("%d dead-letter warnings for %d records, want them collapsed to one or two", warnings, poison)
	}
	if lines > 100 {
		t.Errorf("%d log lines for %d poison records, want far fewer than one per record", lines, poison)
	}
}
