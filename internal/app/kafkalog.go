package app

import (
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// repeatWindow is how long a franz-go warning or error is not logged again
// with the same message and values.
const repeatWindow = time.Minute

// repeatLogger passes franz-go's log lines on, except a warning or error
// that repeats one logged less than repeatWindow ago. franz-go retries a
// broker that rejects the connection every few seconds and logs each
// attempt at Warn level, which would flood the log for as long as the
// setting stays wrong. The next copy logged after the window carries the
// number of copies dropped in between, as "repeated".
type repeatLogger struct {
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

func collapseRepeats(next kgo.Logger) *repeatLogger {
	return &repeatLogger{next: next, now: time.Now, seen: make(map[string]*repeat)}
}

// Level implements kgo.Logger.
func (l *repeatLogger) Level() kgo.LogLevel { return l.next.Level() }

// Log implements kgo.Logger.
func (l *repeatLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
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
func (l *repeatLogger) admit(key string) (dropped int, ok bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()

	r := l.seen[key]
	if r != nil && now.Sub(r.logged) < repeatWindow {
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
func (l *repeatLogger) forget(now time.Time) {
	const maxLines = 256
	if len(l.seen) <= maxLines {
		return
	}
	for key, r := range l.seen {
		if now.Sub(r.logged) >= repeatWindow {
			delete(l.seen, key)
		}
	}
}
