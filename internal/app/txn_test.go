package app

import (
	"context"
	"crypto/rand"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// produceTxn writes values in one transaction of a transactional producer
// and commits it, or aborts it when commit is false.
func produceTxn(t *testing.T, k *kafkatest.Cluster, id string, commit bool, values [][]byte) {
	t.Helper()
	cl := beginTxn(t, k, id, values)
	endTxn(t, cl, commit)
}

// beginTxn writes values in a transaction that it leaves open.
func beginTxn(t *testing.T, k *kafkatest.Cluster, id string, values [][]byte) *kgo.Client {
	t.Helper()
	cl := k.Client(kgo.TransactionalID(id))
	t.Cleanup(cl.Close)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

func endTxn(t *testing.T, cl *kgo.Client, commit bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
}

// Records of a transactional producer: those of an aborted transaction
// never become events, those of an open one wait for its commit, and the
// transaction markers, which are no records, do not keep the partition
// behind. The group commits to the last stable offset, past the markers,
// and the enricher stays live past the progress timeout, also while a
// transaction is open.
// The open transaction's records count as lag until they are delivered.
func TestTransactionalRecords(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	produceTxn(t, k, "calls-1", true, records("c", 10))
	produceTxn(t, k, "calls-2", false, records("x", 5))
	produceTxn(t, k, "calls-3", true, records("d", 10))
	open := beginTxn(t, k, "calls-4", records("o", 5))
	addr := freeAddr(t)
	h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addr}))

	// 10 + marker, 5 + marker, 10 + marker: the last stable offset, with
	// the open transaction after it.
	const endOffset = 28
	kafkatest.Eventually(t, 30*time.Second, "20 events", func() bool { return len(h.capture.UUIDs()) >= 20 })
	time.Sleep(time.Second) // for events that should not come, and the next commit
	if got := len(h.capture.UUIDs()); got != 20 {
		t.Errorf("%d events delivered, want the 20 of the committed transactions", got)
	}
	if got := k.Committed(group, topic)[0]; got != endOffset {
		t.Errorf("committed offset %d, want %d, the last stable offset", got, endOffset)
	}
	// Probed as an orchestrator does, for twice the progress timeout.
	for deadline := time.Now().Add(2 * 3 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if code, body := probe(addr, "/healthz"); code != http.StatusOK {
			t.Fatalf("healthz after the last transaction = %d %q, want 200", code, body)
		}
	}
	lag := func() float64 {
		_, metrics := probe(addr, "/metrics")
		v, _ := sample(metrics, `enricher_consumer_lag_records{partition="0",topic="llm-calls"}`)
		return v
	}
	if got := lag(); got != 5 {
		t.Errorf("lag = %v while a transaction of 5 records is open, want 5", got)
	}

	endTxn(t, open, true)
	kafkatest.Eventually(t, 30*time.Second, "commit past the last transaction", func() bool {
		return k.Committed(group, topic)[0] == endOffset+6
	})
	kafkatest.Eventually(t, 10*time.Second, "lag 0", func() bool { return lag() == 0 })

	lost := missing(h.capture, "c", 10) + missing(h.capture, "d", 10) + missing(h.capture, "o", 5)
	if lost > 0 {
		t.Errorf("%d of the 25 committed records never arrived", lost)
	}
	if n := 5 - missing(h.capture, "x", 5); n > 0 {
		t.Errorf("%d records of the aborted transaction arrived, want none", n)
	}
	delivered, distinct := len(h.capture.Events()), len(h.capture.UUIDs())
	if delivered != distinct {
		t.Errorf("%d events for %d uuids: with no crash, nothing is sent twice", delivered, distinct)
	}
	t.Logf("outcome: sent 30 (25 committed, 5 aborted), delivered %d (%d distinct), duplicated %d, lost %d",
		delivered, distinct, delivered-distinct, lost)
}

// A long run of aborted transactions: the poll loop reads nothing it hands
// on, but each marker it passes is progress, so /healthz stays live while
// the enricher works through them. Each transaction holds one record of
// 700 KB that does not compress, so a fetch (1 MiB per partition) brings
// about one transaction. Each fetch waits 200 ms at the broker, so reading
// them all takes longer than the progress timeout.
func TestAbortedTransactionsAreProgress(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	k.ProduceValues(topic, records("p", 1)...)
	const aborted = 25
	for i := range aborted {
		big := make([]byte, 700<<10)
		rand.Read(big)
		produceTxn(t, k, "calls-"+strconv.Itoa(i), false, [][]byte{big})
	}
	k.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		k.SleepControl(func() { time.Sleep(200 * time.Millisecond) })
		return nil, nil, false
	})
	addr := freeAddr(t)
	start := time.Now()
	h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addr}))

	const endOffset = 1 + 2*aborted // the plain record, then record and marker
	for k.Committed(group, topic)[0] != endOffset {
		if time.Since(start) > time.Minute {
			t.Fatalf("committed offset %d after a minute, want %d", k.Committed(group, topic)[0], endOffset)
		}
		if code, body := probe(addr, "/healthz"); code != http.StatusOK {
			t.Fatalf("healthz at %s, with the commit at %d of %d: %d %q, want 200",
				time.Since(start).Round(time.Millisecond), k.Committed(group, topic)[0], endOffset, code, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("read the aborted transactions in %s, within the 3 s progress timeout: the test shows nothing", took)
	}
	if got := len(h.capture.UUIDs()); got != 1 {
		t.Errorf("%d events delivered, want the 1 plain record", got)
	}
}
