package app

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// progress decides liveness. The enricher is live unless records have
// waited for longer than timeout without any progress: no record or
// transaction marker polled, no record resolved, and no response from
// PostHog. An idle enricher, with nothing waiting, is always live.
//
// Commits play no part. A commit that fails, during a rebalance or not, is
// retried on the next tick, and the lag metric shows it.
//
// A PostHog response with an error status still counts as progress,
// because a restart cannot fix PostHog, and the alerts report it. A PostHog that accepts connections and
// never responds makes no progress, so the enricher restarts and opens new
// connections.
type progress struct {
	timeout time.Duration
	now     func() time.Time

	// last is the time of the last progress, in Unix nanoseconds. It is
	// atomic because every record marks progress twice.
	last atomic.Int64

	mu sync.Mutex
	// waitingSince is when a check first saw records waiting after a
	// check that saw none, or zero while none wait.
	waitingSince time.Time
}

func newProgress(timeout time.Duration, now func() time.Time) *progress {
	if now == nil {
		now = time.Now
	}
	p := &progress{timeout: timeout, now: now}
	p.mark()
	return p
}

// mark records progress.
func (p *progress) mark() { p.last.Store(p.now().UnixNano()) }

// check returns an error when waiting records have seen no progress for
// longer than the timeout. waiting is the number of records not resolved.
func (p *progress) check(waiting int64) error {
	t := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if waiting <= 0 {
		p.waitingSince = time.Time{}
		return nil
	}
	if p.waitingSince.IsZero() {
		p.waitingSince = t
	}
	// Records that arrived after a long idle spell have not waited for
	// the whole time since the last progress.
	since := time.Unix(0, p.last.Load())
	if p.waitingSince.After(since) {
		since = p.waitingSince
	}
	if stalled := t.Sub(since); stalled > p.timeout {
		return fmt.Errorf("no progress for %s while %d records wait (ENRICHER_PROGRESS_TIMEOUT is %s)",
			stalled.Round(time.Second), waiting, p.timeout)
	}
	return nil
}
