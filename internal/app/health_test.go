package app

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/llm-enricher/enricher/internal/kafkatest"
)

// Timeouts short enough for a test, and valid together: the revoke is
// shorter than the rebalance, and the rebalance shorter than the progress
// timeout.
var fastTimeouts = map[string]string{
	"ENRICHER_KAFKA_REBALANCE_TIMEOUT": "2s",
	"ENRICHER_REVOKE_TIMEOUT":          "1s",
	"ENRICHER_PROGRESS_TIMEOUT":        "3s",
}

func withFastTimeouts(extra map[string]string) map[string]string {
	out := make(map[string]string, len(fastTimeouts)+len(extra))
	for k, v := range fastTimeouts {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// probe returns the status and body of GET path on addr, or 0 when the
// request failed.
func probe(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A zombie: PostHog accepts connections and never responds, the in-flight
// limit fills, and the poll loop stops while records wait. Liveness fails
// once the progress timeout has passed; readiness does not.
func TestLivenessFailsWithoutProgress(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	h.capture.Hang()
	t.Cleanup(h.capture.Release)
	k.ProduceValues(topic, records("z", 50)...)
	addr := freeAddr(t)
	in := h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addr, "ENRICHER_MAX_IN_FLIGHT": "10"}))

	kafkatest.Eventually(t, 30*time.Second, "a request in flight", func() bool { return h.capture.Requests() > 0 })
	if code, body := probe(addr, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz right after the first request = %d %q, want 200", code, body)
	}
	var body string
	kafkatest.Eventually(t, 30*time.Second, "healthz 503", func() bool {
		var code int
		code, body = probe(addr, "/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "no progress") || !strings.Contains(body, "ENRICHER_PROGRESS_TIMEOUT") {
		t.Errorf("healthz body = %q, want it to name the stall and the setting", body)
	}
	if code, body := probe(addr, "/readyz"); code != http.StatusOK {
		t.Errorf("readyz = %d %q, want 200: the key is not rejected", code, body)
	}
	h.capture.Release()
	kafkatest.Eventually(t, 60*time.Second, "healthz 200 after PostHog responds", func() bool {
		code, _ := probe(addr, "/healthz")
		return code == http.StatusOK
	})
	in.stop(t)
}

// A zombie that stalls while caught up: the broker stops answering fetches,
// so the poll loop learns of no new record. The end offsets listed beside
// it show the records waiting, and liveness fails once the progress
// timeout has passed. The lag metric grows with them.
func TestLivenessFailsWhenFetchesStall(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	k.ProduceValues(topic, records("a", 10)...)
	addr := freeAddr(t)
	h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addr}))
	kafkatest.Eventually(t, 30*time.Second, "commit to 10", func() bool { return k.Committed(group, topic)[0] == 10 })

	var stalled atomic.Bool
	stalled.Store(true)
	k.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		// Handled with no response: the fetch hangs until the client's
		// read timeout, and the next one hangs again.
		return nil, nil, stalled.Load()
	})
	k.ProduceValues(topic, records("b", 5)...)

	var body string
	kafkatest.Eventually(t, 30*time.Second, "healthz 503", func() bool {
		var code int
		code, body = probe(addr, "/healthz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "5 records wait") {
		t.Errorf("healthz body = %q, want the 5 records that wait", body)
	}
	_, metrics := probe(addr, "/metrics")
	if lag, _ := sample(metrics, `enricher_consumer_lag_records{partition="0",topic="llm-calls"}`); lag != 5 {
		t.Errorf("lag = %v while fetches stall, want 5", lag)
	}
	if got := len(h.capture.UUIDs()); got != 10 {
		t.Fatalf("%d events delivered while fetches stall, want 10", got)
	}

	stalled.Store(false)
	kafkatest.Eventually(t, 60*time.Second, "commit to 15 once fetches work", func() bool { return k.Committed(group, topic)[0] == 15 })
	kafkatest.Eventually(t, 10*time.Second, "healthz 200", func() bool {
		code, _ := probe(addr, "/healthz")
		return code == http.StatusOK
	})
}

// An idle enricher with everything delivered stays live long past the
// progress timeout.
func TestLivenessIdleStaysHealthy(t *testing.T) {
	k := kafkatest.New(t, 2, topic, dlqT)
	h := newHarness(t, k)
	spread(k, 2, records("i", 10))
	addr := freeAddr(t)
	h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addr}))

	kafkatest.Eventually(t, 30*time.Second, "commit to the end", func() bool { return sum(k.Committed(group, topic)) == 10 })
	time.Sleep(2 * 3 * time.Second) // twice the progress timeout
	if code, body := probe(addr, "/healthz"); code != http.StatusOK {
		t.Errorf("healthz of an idle enricher = %d %q, want 200", code, body)
	}
}

// Batches slower than the rebalance timeout, a second member joining, and
// every offset commit failing with REBALANCE_IN_PROGRESS until long after
// the records are delivered: liveness never fails, and the commits land
// once the broker accepts them again.
func TestCommitErrorsNeverFailLiveness(t *testing.T) {
	const partitions, n = 4, 200
	k := kafkatest.New(t, partitions, topic, dlqT)
	h := newHarness(t, k)
	h.capture.Latency(3 * time.Second) // longer than the 2s rebalance timeout

	var failing atomic.Bool
	var rejected atomic.Int64
	failing.Store(true)
	k.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		rejected.Add(1)
		return commitError(req.(*kmsg.OffsetCommitRequest), kerr.RebalanceInProgress), nil, true
	})

	spread(k, partitions, records("s", n))
	addrA, addrB := freeAddr(t), freeAddr(t)
	h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addrA, "ENRICHER_PROGRESS_TIMEOUT": "5s"}))
	kafkatest.Eventually(t, 30*time.Second, "a request in flight", func() bool { return h.capture.Requests() > 0 })
	h.start(withFastTimeouts(map[string]string{"ENRICHER_HTTP_ADDR": addrB, "ENRICHER_PROGRESS_TIMEOUT": "5s"}))

	var failures []string
	watch := func() {
		for _, addr := range []string{addrA, addrB} {
			if code, body := probe(addr, "/healthz"); code == http.StatusServiceUnavailable {
				failures = append(failures, addr+": "+body)
			}
		}
	}
	kafkatest.Eventually(t, 90*time.Second, "every record delivered", func() bool {
		watch()
		return missing(h.capture, "s", n) == 0
	})
	// Twice the progress timeout with everything delivered and nothing
	// committed.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		watch()
	}
	if len(failures) > 0 {
		t.Errorf("liveness failed %d times while commits failed, first: %s", len(failures), failures[0])
	}
	if rejected.Load() == 0 {
		t.Fatal("no commit was rejected, so the test proved nothing")
	}
	if c := k.Committed(group, topic); len(c) != 0 {
		t.Fatalf("committed %v while every commit failed", c)
	}
	failing.Store(false)
	kafkatest.Eventually(t, 30*time.Second, "commit to the end", func() bool { return sum(k.Committed(group, topic)) == n })
}

// commitError returns a response to req that fails every partition with
// code.
func commitError(req *kmsg.OffsetCommitRequest, code *kerr.Error) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// While PostHog rejects the key, the enricher waits by design: readiness
// fails and liveness passes, however long the wait.
func TestLivenessPassesWhileKeyRejected(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	h.capture.SetKey("phc_other")
	k.ProduceValues(topic, records("r", 5)...)
	addr := freeAddr(t)
	h.start(map[string]string{
		"ENRICHER_HTTP_ADDR":               addr,
		"ENRICHER_KAFKA_REBALANCE_TIMEOUT": "1s",
		"ENRICHER_REVOKE_TIMEOUT":          "500ms",
		"ENRICHER_PROGRESS_TIMEOUT":        "1500ms",
	})

	kafkatest.Eventually(t, 30*time.Second, "readyz 503", func() bool {
		code, _ := probe(addr, "/readyz")
		return code == http.StatusServiceUnavailable
	})
	// The sink's backoff between retries, doubling from 500ms, exceeds
	// the 1.5s progress timeout within seconds.
	for deadline := time.Now().Add(12 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, body := probe(addr, "/healthz"); code != http.StatusOK {
			t.Fatalf("healthz = %d %q while the key is rejected, want 200", code, body)
		}
	}
	if n := h.capture.Statuses()[403]; n < 2 {
		t.Errorf("%d 403 answers, want the key rejected repeatedly", n)
	}
}
