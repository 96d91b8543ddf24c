package kafkaconn

import (
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// RepeatWindow is how long CollapseRepeats keeps a franz-go warning or
// error from being logged again with the same message and values.
const RepeatWindow = time.Minute

// RepeatLogger passes franz-go's log lines on, except a warning or error
// that repeats one logged less than RepeatWindow ago. franz-go retries a
// broker that rejects the connection every few seconds and logs each
// attempt at Warn level, which would flood the log for as long as the
// setting stays wrong. The next copy logged after the window carries the
// number of copies dropped in between, as "repeated".
//
// franz-go's Info lines go on at Debug: they trace each step of joining
// the group and assigning partitions, which the enricher logs itself in
// one line each.
type RepeatLogger struct {
	next kgo.Logger
	now  func() time.Time

	mu   sync.Mutex
	seen map[string]*repeat
}

// repeat is the state of one distinct log line.
type repeat struct {
	logged  time.Time
	dropped int
}

// CollapseRepeats returns a RepeatLogger that logs to next. Give it to every
// client that dials the brokers, because each one retries a rejected
// connection on its own.
func CollapseRepeats(next kgo.Logger) *RepeatLogger {
	return &RepeatLogger{next: next, now: time.Now, seen: make(map[string]*repeat)}
}

// Level implements kgo.Logger. At Info, franz-go need not build its Info
// lines, which would go on at Debug and be dropped.
func (l *RepeatLogger) Level() kgo.LogLevel {
	level := l.next.Level()
	if level == kgo.LogLevelInfo {
		return kgo.LogLevelWarn
	}
	return level
}

// Log implements kgo.Logger.
func (l *RepeatLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if level == kgo.LogLevelInfo {
		level = kgo.LogLevelDebug
	}
	if level != kgo.LogLevelError && level != kgo.LogLevelWarn {
		l.next.Log(level, msg, keyvals...)
		return
	}
	dropped, ok := l.admit(fmt.Sprint(level, msg, keyvals))
	if !ok {
		return
	}
	if dropped > 0 {
		keyvals = append(keyvals[:len(keyvals):len(keyvals)], "repeated", dropped)
	}
	l.next.Log(level, msg, keyvals...)
}

// admit reports whether the line with this key is logged now, and how many
// copies of it were dropped since it was last logged.
func (l *RepeatLogger) admit(key string) (dropped int, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()

	r := l.seen[key]
	if r != nil && now.Sub(r.logged) < RepeatWindow {
		r.dropped++
		return 0, false
	}
	if r != nil {
		dropped = r.dropped
	}
	l.seen[key] = &repeat{logged: now}
	l.forget(now)
	return dropped, true
}

// forget removes the lines logged more than a window ago, which no longer
// hold anything back, so that lines with changing values do not pile up.
// Their dropped counts are lost, which a later copy would have reported.
func (l *RepeatLogger) forget(now time.Time) {
	const maxLines = 256
	if len(l.seen) <= maxLines {
		return
	}
	for key, r := range l.seen {
		if now.Sub(r.logged) >= RepeatWindow {
			delete(l.seen, key)
		}
	}
}
