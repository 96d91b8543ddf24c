package sink

import (
	"sync"
	"time"
)

// limiter lets one log line per key through each interval and counts the
// ones it holds back, so that an outage logs a line every few seconds and
// not one per event.
type limiter struct {
	every time.Duration

	mu   sync.Mutex
	last map[int]time.Time
	held map[int]int
}

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, last: make(map[int]time.Time), held: make(map[int]int)}
}

// allow reports whether a line for key may be logged now, and how many
// lines for key it held back since the last one it allowed.
func (l *limiter) allow(key int) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last[key]) < l.every {
		l.held[key]++
		return 0, false
	}
	n := l.held[key]
	l.last[key] = now
	l.held[key] = 0
	return n, true
}
