// Package logging builds the enricher's slog logger: JSON or text lines on
// one writer, at a configured level, with repeated warnings and errors
// collapsed.
package logging

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Window is how long a repeated warning or error stays collapsed.
const Window = 10 * time.Second

// New returns a logger that writes to w in format, "json" or "text", and
// drops records below level. Warnings and errors are collapsed as
// Collapse describes.
func New(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(Collapse(h, Window, nil))
}

// durationText writes durations as text such as "1.5s". The JSON handler
// would write them as integer nanoseconds.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// maxKeys bounds the repeats remembered; past it, expired ones are
// forgotten, and all of them if none expired.
const maxKeys = 1000

// Collapse wraps h so that a warning or error logged again within window,
// with the same message, "err" and "topic", is dropped. The first record
// logged after the window carries suppressed_repeats, the number dropped.
// Records below Warn pass unchanged. now is the clock; nil means
// time.Now.
func Collapse(h slog.Handler, window time.Duration, now func() time.Time) slog.Handler {
	if now == nil {
		now = time.Now
	}
	return &collapser{next: h, state: &repeats{window: window, now: now, seen: make(map[string]*repeat)}}
}

type collapser struct {
	next  slog.Handler
	state *repeats
}

// repeats is shared by a handler and those derived from it with With.
type repeats struct {
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]*repeat
}

type repeat struct {
	until      time.Time
	suppressed int
}

func (c *collapser) Enabled(ctx context.Context, l slog.Level) bool { return c.next.Enabled(ctx, l) }

func (c *collapser) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &collapser{next: c.next.WithAttrs(attrs), state: c.state}
}

func (c *collapser) WithGroup(name string) slog.Handler {
	return &collapser{next: c.next.WithGroup(name), state: c.state}
}

func (c *collapser) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return c.next.Handle(ctx, r)
	}
	n, ok := c.state.admit(key(r))
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed_repeats", n))
	}
	return c.next.Handle(ctx, r)
}

// admit reports whether a record with key k is logged, and how many with
// that key were dropped before it.
func (s *repeats) admit(k string) (int, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.seen[k]
	if prev != nil && now.Before(prev.until) {
		prev.suppressed++
		return 0, false
	}
	if prev == nil && len(s.seen) >= maxKeys {
		s.forget(now)
	}
	n := 0
	if prev != nil {
		n = prev.suppressed
	}
	s.seen[k] = &repeat{until: now.Add(s.window)}
	return n, true
}

func (s *repeats) forget(now time.Time) {
	for k, r := range s.seen {
		if !now.Before(r.until) {
			delete(s.seen, k)
		}
	}
	if len(s.seen) >= maxKeys {
		clear(s.seen)
	}
}

// key identifies repeats: the level, the message, and the err and topic
// attributes. Record ids such as partition, offset and uuid are left out,
// so that one failure hitting many records collapses into one line.
func key(r slog.Record) string {
	k := r.Level.String() + "\x00" + r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" || a.Key == "topic" {
			k += "\x00" + a.Key + "=" + a.Value.String()
		}
		return true
	})
	return k
}
