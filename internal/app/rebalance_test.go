package app

import (
	"sync"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// commitWatch polls the group's committed offsets and records any that
// move backwards.
type commitWatch struct {
	mu        sync.Mutex
	last      map[int32]int64
	decreased []string
	stop      chan struct{}
	done      chan struct{}
}

func watchCommits(t *testing.T, k *kafkatest.Cluster) *commitWatch {
	w := &commitWatch{last: make(map[int32]int64), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			now, err := k.CommittedE(group, topic)
			if err != nil {
				continue
			}
			w.mu.Lock()
			for p, o := range now {
				if o < w.last[p] {
					w.decreased = append(w.decreased, "partition "+itoa(int(p))+": "+itoa(int(w.last[p]))+" -> "+itoa(int(o)))
				}
				w.last[p] = o
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *commitWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// A second instance joins while the first has batches in flight for the
// partitions that move. Every record arrives, and no committed offset ever
// moves back.
func TestRebalanceWhileInFlight(t *testing.T) {
	const partitions, n = 6, 600
	k := kafkatest.New(t, partitions, topic, dlqT)
	h := newHarness(t, k)
	h.capture.Latency(time.Second)
	watch := watchCommits(t, k)

	spread(k, partitions, records("c", n/2))
	h.start(nil)
	kafkatest.Eventually(t, 30*time.Second, "a request in flight", func() bool { return h.capture.Requests() > 0 })
	h.start(nil)
	spread(k, partitions, records("d", n/2))

	kafkatest.Eventually(t, 90*time.Second, "every record delivered", func() bool {
		return missing(h.capture, "c", n/2) == 0 && missing(h.capture, "d", n/2) == 0
	})
	kafkatest.Eventually(t, 30*time.Second, "commit to the end", func() bool { return sum(k.Committed(group, topic)) == n })
	watch.close()
	if len(watch.decreased) > 0 {
		t.Errorf("committed offsets moved back: %v", watch.decreased)
	}
	logOutcome(t, h.capture, n/2, "c", "d")
}

// A burst far larger than the in-flight limit is delivered whole, and the
// capture server never holds more events in flight than the limit allows.
func TestBurstBackpressure(t *testing.T) {
	const n, limit = 50_000, 4000
	k := kafkatest.New(t, 3, topic, dlqT)
	h := newHarness(t, k)
	var (
		mu           sync.Mutex
		active, peak int
	)
	h.capture.Fault(func(int) (int, time.Duration) {
		mu.Lock()
		active++
		peak = max(peak, active)
		mu.Unlock()
		time.Sleep(2 * time.Second)
		mu.Lock()
		active--
		mu.Unlock()
		return 0, 0
	})
	spread(k, 3, records("c", n))
	h.start(map[string]string{"ENRICHER_MAX_IN_FLIGHT": itoa(limit), "ENRICHER_SHUTDOWN_TIMEOUT": "30s"})

	kafkatest.Eventually(t, 5*time.Minute, "every record delivered", func() bool { return len(h.capture.UUIDs()) == n })
	kafkatest.Eventually(t, 30*time.Second, "commit to the end", func() bool { return sum(k.Committed(group, topic)) == n })
	if peak := h.capture.PeakInFlight(); peak > limit {
		t.Errorf("%d events in flight at the capture server at once, want at most the limit %d", peak, limit)
	}
	logOutcome(t, h.capture, n, "c")
}
