package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// clock is a manual clock for the collapse window.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// One failure hitting many records logs once per window, and the next line
// counts the dropped ones.
func TestCollapseRepeatedWarnings(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	log := slog.New(Collapse(slog.NewJSONHandler(&buf, nil), 10*time.Second, c.now))
	cause := errors.New("broker down")

	for off := range 100 {
		log.Warn("writing to the dead-letter topic failed; retrying", "err", cause, "topic", "llm-calls", "offset", off)
	}
	if got := lines(t, &buf); len(got) != 1 {
		t.Fatalf("%d lines for 100 repeats in one window, want 1", len(got))
	}
	c.t = c.t.Add(11 * time.Second)
	log.Warn("writing to the dead-letter topic failed; retrying", "err", cause, "topic", "llm-calls", "offset", 100)
	got := lines(t, &buf)
	if len(got) != 2 {
		t.Fatalf("%d lines after the window, want 2", len(got))
	}
	if n := got[1]["suppressed_repeats"]; n != 99.0 {
		t.Errorf("suppressed_repeats = %v, want 99", n)
	}
}

// Different errors, topics or messages are not repeats, and Info lines are
// never collapsed.
func TestCollapseKeepsDistinctLines(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	log := slog.New(Collapse(slog.NewJSONHandler(&buf, nil), 10*time.Second, c.now)).With("component", "test")

	log.Warn("fetching failed", "err", errors.New("a"), "topic", "t1")
	log.Warn("fetching failed", "err", errors.New("b"), "topic", "t1")
	log.Warn("fetching failed", "err", errors.New("a"), "topic", "t2")
	log.Error("fetching failed", "err", errors.New("a"), "topic", "t1")
	log.Info("partitions assigned", "topic", "t1")
	log.Info("partitions assigned", "topic", "t1")
	if got := lines(t, &buf); len(got) != 6 {
		t.Errorf("%d lines, want all 6", len(got))
	}
}

// Text format is available for the embedded first run.
func TestNewTextFormat(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "text", slog.LevelInfo).Info("started", "topic", "llm-calls")
	if !strings.Contains(buf.String(), "msg=started topic=llm-calls") {
		t.Errorf("text line = %q", buf.String())
	}
	buf.Reset()
	New(&buf, "json", slog.LevelWarn).Info("dropped below the level")
	if buf.Len() != 0 {
		t.Errorf("Info line written at level warn: %q", buf.String())
	}
}

func TestNewWritesDurationsAsText(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "json", slog.LevelInfo).Info("retrying", "retry_in", 1500*time.Millisecond)
	got := lines(t, &buf)
	if len(got) != 1 {
		t.Fatalf("%d lines, want 1", len(got))
	}
	if got[0]["retry_in"] != "1.5s" {
		t.Errorf("retry_in = %v, want \"1.5s\"", got[0]["retry_in"])
	}
}
