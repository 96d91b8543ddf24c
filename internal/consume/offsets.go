package consume

import (
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// partition tracks the records of one assigned partition from the moment
// they are polled until they are resolved: delivered to the sink, or
// written to the dead-letter topic.
//
// NOTE: the committable offset is the lowest offset not yet resolved, never
// the highest one resolved. Records resolve out of order, and a commit past
// an unresolved record would lose it on a restart.
type partition struct {
	mu sync.Mutex
	// pending holds the unresolved records, and the resolved ones behind
	// the first unresolved record, in offset order. A run of resolved
	// records may share one entry, which holds the run's last offset.
	pending []entry
	// compactAt is the length of pending at which add merges its runs of
	// resolved entries. It keeps pending under about four times the most
	// records this partition had unresolved at once, or 1024 if larger.
	compactAt int
	// next is the offset after the last record that left pending.
	next      int64
	nextEpoch int32
	// committed is the last offset committed for this assignment, or -1.
	committed int64
	// polled is the offset after the last polled record, or -1.
	polled int64
	// end is the highest last stable offset seen, from fetches or listed
	// offsets, or -1: the end of what the consumer can read.
	end int64
	// revoked is set once the partition is revoked or lost. Resolutions
	// that arrive later change nothing.
	revoked bool
	// fetchFailedAt is the time of the last failed fetch, or zero. A
	// partition that keeps failing counts as waiting, so that liveness
	// fails for a fault that only a restart clears, such as a topic that
	// was deleted and created again under a new id.
	fetchFailedAt time.Time
}

type entry struct {
	offset   int64
	epoch    int32
	resolved bool
}

func newPartition() *partition {
	return &partition{next: -1, committed: -1, polled: -1, end: -1}
}

// add registers a polled record. Records arrive in offset order.
func (p *partition) add(r *kgo.Record) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked {
		return false
	}
	if len(p.pending) >= max(p.compactAt, minCompact) {
		p.compact()
		p.compactAt = 2 * len(p.pending)
	}
	p.pending = append(p.pending, entry{offset: r.Offset, epoch: r.LeaderEpoch})
	p.polled = r.Offset + 1
	return true
}

// minCompact is the shortest pending that add compacts.
const minCompact = 1024

// compact merges each run of resolved entries into its last entry. Once a
// run's first record is the oldest, the run leaves pending at once, and
// next becomes the offset after the run, as it would without the merge.
func (p *partition) compact() {
	out := p.pending[:0]
	for _, e := range p.pending {
		if n := len(out); n > 0 && e.resolved && out[n-1].resolved {
			out[n-1] = e
			continue
		}
		out = append(out, e)
	}
	clear(p.pending[len(out):])
	p.pending = out
}

// skip registers a polled record that needs no handling, such as a
// transaction marker, as resolved. Behind an unresolved record, a run of
// such records shares one entry of pending.
func (p *partition) skip(r *kgo.Record) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked {
		return false
	}
	p.polled = r.Offset + 1
	switch n := len(p.pending); {
	case n == 0:
		p.next, p.nextEpoch = r.Offset+1, r.LeaderEpoch
	case p.pending[n-1].resolved:
		p.pending[n-1].offset, p.pending[n-1].epoch = r.Offset, r.LeaderEpoch
	default:
		p.pending = append(p.pending, entry{offset: r.Offset, epoch: r.LeaderEpoch, resolved: true})
	}
	return true
}

// setEnd records a last stable offset. An older, lower one changes nothing.
func (p *partition) setEnd(offset int64) {
	p.mu.Lock()
	p.end = max(p.end, offset)
	p.mu.Unlock()
}

// backlog returns the records not yet resolved: polled and in flight, or
// behind the end and not yet polled. start is where polling began when
// nothing is polled yet, or -1 when unknown.
func (p *partition) backlog(start int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, e := range p.pending {
		if !e.resolved {
			n++
		}
	}
	next := p.polled
	if next < 0 {
		next = start
	}
	if next >= 0 && p.end > next {
		n += p.end - next
	}
	if n == 0 && !p.fetchFailedAt.IsZero() && time.Since(p.fetchFailedAt) < fetchFailureMemory {
		n = 1
	}
	return n
}

// fetchFailureMemory is how long after a failed fetch a partition counts
// as waiting. The poll loop retries a failing fetch at least every
// maxFetchBackoff, so a persistent failure keeps the partition waiting,
// and a transient one is forgotten soon after it stops.
const fetchFailureMemory = 3 * maxFetchBackoff

// fetchFailed records a failed fetch.
func (p *partition) fetchFailed(at time.Time) {
	p.mu.Lock()
	p.fetchFailedAt = at
	p.mu.Unlock()
}

// resolve marks the record at offset resolved and drops the resolved
// prefix of pending.
func (p *partition) resolve(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked {
		return
	}
	i := sort.Search(len(p.pending), func(i int) bool { return p.pending[i].offset >= offset })
	if i == len(p.pending) || p.pending[i].offset != offset {
		return
	}
	p.pending[i].resolved = true

	n := 0
	for n < len(p.pending) && p.pending[n].resolved {
		n++
	}
	if n == 0 {
		return
	}
	last := p.pending[n-1]
	p.next, p.nextEpoch = last.offset+1, last.epoch
	// Shift rather than reslice, so the backing array does not grow
	// without bound under steady traffic.
	m := copy(p.pending, p.pending[n:])
	p.pending = p.pending[:m]
}

// committable returns the offset to commit, and false when there is
// nothing new since the last commit.
func (p *partition) committable() (kgo.EpochOffset, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked || p.next < 0 || p.next <= p.committed {
		return kgo.EpochOffset{}, false
	}
	return kgo.EpochOffset{Epoch: p.nextEpoch, Offset: p.next}, true
}

// markCommitted records a successful commit. Offsets never move back.
func (p *partition) markCommitted(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if offset > p.committed {
		p.committed = offset
	}
}

// unresolved returns how many polled records are not yet resolved.
func (p *partition) unresolved() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.pending {
		if !e.resolved {
			n++
		}
	}
	return n
}

func (p *partition) revoke() {
	p.mu.Lock()
	p.revoked = true
	p.pending = nil
	p.mu.Unlock()
}
