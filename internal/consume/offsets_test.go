package consume

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func addOffsets(p *partition, offsets ...int64) {
	for _, o := range offsets {
		p.add(&kgo.Record{Offset: o, LeaderEpoch: 3})
	}
}

func wantCommittable(t *testing.T, p *partition, want int64) {
	t.Helper()
	eo, ok := p.committable()
	if want < 0 {
		if ok {
			t.Fatalf("committable = %d, want nothing", eo.Offset)
		}
		return
	}
	if !ok || eo.Offset != want {
		t.Fatalf("committable = %d (ok %v), want %d", eo.Offset, ok, want)
	}
}

// An unresolved record holds the commit back however many records behind
// it resolve.
func TestPartitionCommitStopsAtUnresolved(t *testing.T) {
	p := newPartition()
	addOffsets(p, 10, 11, 12, 13, 14)
	wantCommittable(t, p, -1)

	p.resolve(10)
	p.resolve(11)
	p.resolve(13)
	p.resolve(14)
	wantCommittable(t, p, 12)

	p.resolve(12)
	wantCommittable(t, p, 15)
	if eo, _ := p.committable(); eo.Epoch != 3 {
		t.Errorf("epoch = %d, want the record's leader epoch 3", eo.Epoch)
	}
}

func TestPartitionGapsInOffsets(t *testing.T) {
	p := newPartition()
	addOffsets(p, 5, 9, 20)
	p.resolve(9)
	wantCommittable(t, p, -1)
	p.resolve(5)
	// The offset after the last resolved record: 10 to 19 hold no record,
	// so a consumer resuming at 10 reads 20 next.
	wantCommittable(t, p, 10)
	p.resolve(20)
	wantCommittable(t, p, 21)
}

func TestPartitionCommittedNeverMovesBack(t *testing.T) {
	p := newPartition()
	addOffsets(p, 1, 2)
	p.resolve(1)
	p.resolve(2)
	p.markCommitted(3)
	wantCommittable(t, p, -1)
	p.markCommitted(2)
	if p.committed != 3 {
		t.Errorf("committed = %d after an older commit, want 3", p.committed)
	}
}

func TestPartitionRevokedIgnoresLateResolutions(t *testing.T) {
	p := newPartition()
	addOffsets(p, 1)
	p.revoke()
	p.resolve(1)
	wantCommittable(t, p, -1)
	if p.add(&kgo.Record{Offset: 2}) {
		t.Error("add succeeded on a revoked partition")
	}
}

func TestPartitionUnknownOffsetIgnored(t *testing.T) {
	p := newPartition()
	addOffsets(p, 1, 2)
	p.resolve(7)
	wantCommittable(t, p, -1)
	if n := p.unresolved(); n != 2 {
		t.Errorf("unresolved = %d, want 2", n)
	}
}

// The backlog counts records in flight and records behind the high
// watermark that are not yet polled; resolved records leave it.
func TestPartitionBacklog(t *testing.T) {
	p := newPartition()
	if n := p.backlog(-1); n != 0 {
		t.Fatalf("backlog of a new partition = %d, want 0", n)
	}
	p.setEnd(8)
	if n := p.backlog(-1); n != 0 {
		t.Fatalf("backlog with no start = %d, want 0", n)
	}
	if n := p.backlog(5); n != 3 {
		t.Fatalf("backlog from the group's offset 5 to 8 = %d, want 3", n)
	}
	addOffsets(p, 10, 11, 12)
	p.setEnd(20)
	if n := p.backlog(-1); n != 3+7 {
		t.Fatalf("backlog = %d, want 3 in flight + 7 not polled", n)
	}
	p.resolve(11)
	if n := p.backlog(-1); n != 2+7 {
		t.Fatalf("backlog after resolving 11 = %d, want 9", n)
	}
	p.setEnd(15) // an older fetch's watermark does not move it back
	addOffsets(p, 13, 14, 15, 16, 17, 18, 19)
	p.resolve(10)
	p.resolve(12)
	if n := p.backlog(-1); n != 7 {
		t.Fatalf("backlog = %d, want the 7 records in flight", n)
	}
	for o := int64(13); o < 20; o++ {
		p.resolve(o)
	}
	if n := p.backlog(-1); n != 0 {
		t.Fatalf("backlog with everything resolved = %d, want 0", n)
	}
}

// Transaction markers behind an unresolved record take one entry of
// pending however many there are, and the commit passes them once the
// record resolves. A marker with nothing pending moves the commit at once.
func TestPartitionSkippedMarkersStayBounded(t *testing.T) {
	p := newPartition()
	p.skip(&kgo.Record{Offset: 0, LeaderEpoch: 3})
	wantCommittable(t, p, 1)

	addOffsets(p, 1)
	for o := int64(2); o < 1002; o++ {
		p.skip(&kgo.Record{Offset: o, LeaderEpoch: 3})
	}
	if n := len(p.pending); n != 2 {
		t.Errorf("%d pending entries behind one unresolved record, want 2", n)
	}
	addOffsets(p, 1002)
	p.skip(&kgo.Record{Offset: 1003, LeaderEpoch: 3})
	if n := len(p.pending); n != 4 {
		t.Errorf("%d pending entries, want 4: record, markers, record, marker", n)
	}
	wantCommittable(t, p, 1)

	p.resolve(1)
	wantCommittable(t, p, 1002)
	p.resolve(1002)
	wantCommittable(t, p, 1004)
	if n := p.backlog(-1); n != 0 {
		t.Errorf("backlog = %d with everything resolved, want 0", n)
	}
}

// Records that resolve behind one that does not stay bounded in pending:
// runs of them are merged, and the commit lands where it would without
// the merge once the first record resolves.
func TestPartitionResolvedBehindUnresolvedStayBounded(t *testing.T) {
	p := newPartition()
	addOffsets(p, 0)
	for o := int64(1); o <= 100_000; o++ {
		addOffsets(p, o)
		if o%1000 != 0 {
			p.resolve(o)
		}
	}
	// Unresolved: 0 and every thousandth, 101 in all.
	if n := p.unresolved(); n != 101 {
		t.Fatalf("%d unresolved, want 101", n)
	}
	if n := len(p.pending); n > 4*101+minCompact {
		t.Errorf("%d pending entries for 101 unresolved records, want at most %d", n, 4*101+minCompact)
	}
	wantCommittable(t, p, -1)

	p.resolve(0)
	wantCommittable(t, p, 1000)
	p.resolve(2000)
	wantCommittable(t, p, 1000)
	p.resolve(1000)
	wantCommittable(t, p, 3000)
	for o := int64(3000); o <= 100_000; o += 1000 {
		p.resolve(o)
	}
	wantCommittable(t, p, 100_001)
	if n := len(p.pending); n != 0 {
		t.Errorf("%d pending entries with everything resolved, want 0", n)
	}
}
