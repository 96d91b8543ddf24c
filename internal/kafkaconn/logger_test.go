package kafkaconn

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

func TestCollapseRepeatsWarnings(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	l := CollapseRepeats(kslog.New(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	l.now = func() time.Time { return now }
	lines := func(substrings ...string) []string {
		var found []string
		for _, line := range strings.Split(out.String(), "\n") {
			match := line != ""
			for _, s := range substrings {
				match = match && strings.Contains(line, s)
			}
			if match {
				found = append(found, line)
			}
		}
		return found
	}
	unable := func() {
		l.Log(kgo.LogLevelWarn, "unable to open connection to broker", "broker", "seed_0", "err", io.EOF)
	}

	unable()
	unable()
	unable()
	l.Log(kgo.LogLevelWarn, "unable to open connection to broker", "broker", "seed_1", "err", io.EOF)
	l.Log(kgo.LogLevelInfo, "metadata update triggered", "why", "EOF")
	l.Log(kgo.LogLevelInfo, "metadata update triggered", "why", "EOF")
	if n := len(lines(`"broker":"seed_0"`)); n != 1 {
		t.Errorf("%d lines for seed_0 within the window, want 1", n)
	}
	if n := len(lines(`"broker":"seed_1"`)); n != 1 {
		t.Errorf("%d lines for seed_1, want 1: other values are another line", n)
	}
	if n := len(lines(`"msg":"metadata update triggered"`)); n != 2 {
		t.Errorf("%d Info lines, want 2: only warnings and errors collapse", n)
	}
	if n := len(lines(`"msg":"metadata update triggered"`, `"level":"DEBUG"`)); n != 2 {
		t.Errorf("%d franz-go Info lines logged at Debug, want 2", n)
	}

	now = now.Add(RepeatWindow)
	unable()
	if repeated := lines(`"broker":"seed_0"`, `"repeated":2`); len(repeated) != 1 {
		t.Errorf("after the window, want one seed_0 line with \"repeated\":2, got %q", lines(`"broker":"seed_0"`))
	}
}

func TestFranzGoInfoOnlyAtDebug(t *testing.T) {
	for _, c := range []struct {
		level slog.Level
		want  kgo.LogLevel
	}{
		{slog.LevelDebug, kgo.LogLevelDebug},
		{slog.LevelInfo, kgo.LogLevelWarn},
		{slog.LevelWarn, kgo.LogLevelWarn},
		{slog.LevelError, kgo.LogLevelError},
	} {
		var out bytes.Buffer
		l := CollapseRepeats(kslog.New(slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: c.level}))))
		if got := l.Level(); got != c.want {
			t.Errorf("at %v, Level() = %v, want %v", c.level, got, c.want)
		}
		l.Log(kgo.LogLevelInfo, "joined, balancing group")
		if logged := strings.Contains(out.String(), "joined"); logged != (c.level == slog.LevelDebug) {
			t.Errorf("at %v, franz-go Info line logged = %v, want %v", c.level, logged, c.level == slog.LevelDebug)
		}
	}
}
