package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/dlq"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/kafkatest"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

func TestDeliversAndCommits(t *testing.T) {
	k := kafkatest.New(t, 3, topic, dlqT)
	h := newHarness(t, k)
	spread(k, 3, records("c", 30))
	h.start(map[string]string{"ENRICHER_STATIC_PROPERTIES": "team=search,env=prod"})

	kafkatest.Eventually(t, 30*time.Second, "30 events delivered", func() bool { return len(h.capture.UUIDs()) == 30 })
	kafkatest.Eventually(t, 10*time.Second, "offsets committed to the end", func() bool { return sum(k.Committed(group, topic)) == 30 })

	ev := h.capture.Events()[0]
	var team string
	if !ev.Prop("team", &team) || team != "search" {
		t.Errorf("team = %q, want the static property", team)
	}
	var tokens any
	ev.Prop("$ai_input_tokens", &tokens)
	if tokens != 12.0 {
		t.Errorf("$ai_input_tokens = %v, want 12", tokens)
	}
	if ev.Timestamp != "2026-05-01T10:00:00Z" {
		t.Errorf("timestamp = %s, want the record's", ev.Timestamp)
	}
}

// Poison records go to the dead-letter topic byte for byte, with headers
// naming the error and the source, and do not stall their partition.
func TestPoisonRecordsDeadLettered(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	bad := [][]byte{[]byte(`{"id":"c-1","model":`), {0x00, 0x9f, 0x92}, []byte(`[1,2]`)}
	good := records("r", 1)[0]
	k.ProduceValues(topic, append(append([][]byte{}, bad...), good)...)
	h.start(nil)

	kafkatest.Eventually(t, 30*time.Second, "R delivered", func() bool { return len(h.capture.UUIDs()) == 1 })
	dead := k.ReadAll(dlqT, 3, 20*time.Second)
	if len(dead) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dead))
	}
	// Records are decoded in parallel, so the dead letters of one
	// partition may arrive in any order: match each by its offset header.
	seen := make(map[int]bool)
	for _, r := range dead {
		hdr := headerMap(r)
		offset, err := strconv.Atoi(hdr[dlq.HeaderOffset])
		if err != nil || offset < 0 || offset >= len(bad) || seen[offset] {
			t.Errorf("dead letter with offset header %q, want each of 0, 1 and 2 once", hdr[dlq.HeaderOffset])
			continue
		}
		seen[offset] = true
		if !bytes.Equal(r.Value, bad[offset]) {
			t.Errorf("dead letter of offset %d value = %q, want %q unchanged", offset, r.Value, bad[offset])
		}
		if hdr[dlq.HeaderError] == "" {
			t.Errorf("dead letter of offset %d has no error header", offset)
		}
		if hdr[dlq.HeaderTopic] != topic || hdr[dlq.HeaderPartition] != "0" {
			t.Errorf("dead letter of offset %d source = %s/%s, want %s/0", offset, hdr[dlq.HeaderTopic], hdr[dlq.HeaderPartition], topic)
		}
	}
	kafkatest.Eventually(t, 10*time.Second, "commit past the poison records", func() bool { return k.Committed(group, topic)[0] == 4 })
}

// Bad records larger than franz-go's default batch limit go to the
// dead-letter topic unchanged, and their partition moves on. One is 3 MiB
// that does not compress, on topics that take 8 MiB. The other is 3 MiB
// that compresses to fit topics with Kafka's default limit of about 1 MiB.
func TestLargeBadRecordsDeadLettered(t *testing.T) {
	random := make([]byte, 3<<20)
	rand.Read(random)
	cases := map[string]struct {
		brokerMax int
		value     []byte
	}{
		"incompressible": {8 << 20, random},
		"compressible":   {0, bytes.Repeat([]byte("x"), 3<<20)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var opts []kfake.Opt
			if tc.brokerMax > 0 {
				opts = append(opts, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(tc.brokerMax)}))
			}
			k := kafkatest.NewWith(t, opts, 1, topic, dlqT)
			h := newHarness(t, k)
			k.ProduceValues(topic, tc.value, records("r", 1)[0])
			h.start(nil)

			kafkatest.Eventually(t, 30*time.Second, "R delivered", func() bool { return len(h.capture.UUIDs()) == 1 })
			dead := k.ReadAll(dlqT, 1, 20*time.Second)
			if len(dead) != 1 {
				t.Fatalf("%d dead letters, want 1", len(dead))
			}
			if !bytes.Equal(dead[0].Value, tc.value) {
				t.Errorf("dead letter value of %d bytes differs from the %d-byte record", len(dead[0].Value), len(tc.value))
			}
			kafkatest.Eventually(t, 10*time.Second, "commit past the bad record", func() bool { return k.Committed(group, topic)[0] == 2 })
		})
	}
}

// Many small bad records at once: their dead letters share batches, and
// no batch grows past what a topic with Kafka's default limit takes.
func TestManySmallDeadLettersFitTheTopic(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	bad := make([][]byte, 100)
	for i := range bad {
		bad[i] = make([]byte, 50<<10)
		rand.Read(bad[i])
	}
	for i := 0; i < len(bad); i += 10 {
		k.ProduceValues(topic, bad[i:i+10]...) // 500 KiB, under the topic's limit
	}
	h.start(nil)

	if dead := k.ReadAll(dlqT, len(bad), 30*time.Second); len(dead) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(bad))
	}
	kafkatest.Eventually(t, 10*time.Second, "commit past the bad records", func() bool { return k.Committed(group, topic)[0] == int64(len(bad)) })
}

// A dead-letter topic that takes less than its source topic: a record too
// large for it cannot be dead-lettered, so its partition waits, commits
// nothing past it, and an error names the setting to raise.
func TestTooLargeDeadLetterWaits(t *testing.T) {
	k := kafkatest.NewWith(t, []kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(8 << 20)})}, 1, topic)
	limit := "1048588"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(k.Client()).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &limit}, dlqT); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, k)
	var logs testsupport.Buffer
	h.logHook = func(r slog.Record) {
		if r.Level >= slog.LevelError {
			fmt.Fprintln(&logs, r.Message)
		}
	}
	bad := make([]byte, 3<<20)
	rand.Read(bad)
	k.ProduceValues(topic, bad, records("r", 1)[0])
	h.start(nil)

	kafkatest.Eventually(t, 30*time.Second, "R delivered", func() bool { return len(h.capture.UUIDs()) == 1 })
	kafkatest.Eventually(t, 10*time.Second, "an error naming max.message.bytes", func() bool {
		return strings.Contains(logs.String(), "max.message.bytes")
	})
	time.Sleep(time.Second) // several commit intervals
	if got := k.Committed(group, topic)[0]; got > 0 {
		t.Errorf("committed offset %d, want nothing past the record that waits", got)
	}
}

func headerMap(r *kgo.Record) map[string]string {
	m := make(map[string]string)
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// When the dead-letter topic cannot be written, the commit stays before
// the bad record, even after the records behind it are delivered.
func TestDeadLetterFailureHoldsCommit(t *testing.T) {
	k := kafkatest.New(t, 1, topic) // no dead-letter topic
	h := newHarness(t, k)
	k.ProduceValues(topic, []byte(`[1,2]`), records("r", 1)[0])
	h.start(nil)

	kafkatest.Eventually(t, 30*time.Second, "R delivered", func() bool { return len(h.capture.UUIDs()) == 1 })
	time.Sleep(500 * time.Millisecond) // five commit intervals
	if c, ok := k.Committed(group, topic)[0]; ok {
		t.Errorf("committed offset %d while the bad record at 0 is not dead-lettered, want none", c)
	}
}

// A 503 outage: nothing past the first undelivered record is committed
// during it, and every event arrives after it.
func TestOutageThenRecovery(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	var outage = true
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	h.capture.Fault(func(int) (int, time.Duration) {
		<-mu
		defer func() { mu <- struct{}{} }()
		if outage {
			return http.StatusServiceUnavailable, 0
		}
		return 0, 0
	})
	k.ProduceValues(topic, records("c", 20)...)
	h.start(map[string]string{"ENRICHER_POSTHOG_BATCH_SIZE": "5"})

	kafkatest.Eventually(t, 30*time.Second, "ten 503 answers", func() bool { return h.capture.Statuses()[503] >= 10 })
	if c, ok := k.Committed(group, topic)[0]; ok {
		t.Fatalf("committed offset %d during the outage, want none", c)
	}
	<-mu
	outage = false
	mu <- struct{}{}

	kafkatest.Eventually(t, 60*time.Second, "20 events delivered", func() bool { return len(h.capture.UUIDs()) == 20 })
	kafkatest.Eventually(t, 10*time.Second, "commit to the end", func() bool { return k.Committed(group, topic)[0] == 20 })
	logOutcome(t, h.capture, 20, "c")
}

// A rejected key is a configuration fault: not ready, nothing committed,
// nothing dead-lettered.
func TestUnauthorizedKey(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	h.capture.SetKey("phc_other")
	k.ProduceValues(topic, records("c", 5)...)
	addr := freeAddr(t)
	h.start(map[string]string{"ENRICHER_HTTP_ADDR": addr})

	kafkatest.Eventually(t, 30*time.Second, "two 403 answers", func() bool { return h.capture.Statuses()[403] >= 2 })
	kafkatest.Eventually(t, 10*time.Second, "readyz 503", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if c, ok := k.Committed(group, topic)[0]; ok {
		t.Errorf("committed offset %d with a rejected key, want none", c)
	}
	if dead := k.ReadAll(dlqT, 1, time.Second); len(dead) != 0 {
		t.Errorf("%d records dead-lettered for a rejected key, want 0", len(dead))
	}
}

// Records that arrive while a flush is in flight are all delivered.
func TestRecordsDuringFlush(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	h.capture.Latency(500 * time.Millisecond)
	h.start(nil)
	k.ProduceValues(topic, records("a", 10)...)
	kafkatest.Eventually(t, 30*time.Second, "a request in flight", func() bool { return h.capture.Requests() > 0 })
	k.ProduceValues(topic, records("b", 10)...)

	kafkatest.Eventually(t, 30*time.Second, "20 events delivered", func() bool { return len(h.capture.UUIDs()) == 20 })
	kafkatest.Eventually(t, 10*time.Second, "commit to the end", func() bool { return k.Committed(group, topic)[0] == 20 })
}

// One oversized event does not sink its batch: media is replaced, long
// text truncated, and all ten events are delivered and committed.
func TestOversizedEventsDelivered(t *testing.T) {
	k := kafkatest.NewWith(t, []kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": "16777216"})}, 1, topic, dlqT)
	h := newHarness(t, k)
	values := records("c", 10)
	img := "data:image/png;base64," + strings.Repeat("iVBORw0KGgo", 300_000)
	values[4] = mustMarshal(t, map[string]any{"id": "c-4", "distinct_id": "u", "input": []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "image", "image": img}}}}})
	values[7] = mustMarshal(t, map[string]any{"id": "c-7", "distinct_id": "u", "input": []any{map[string]any{"role": "user", "content": strings.Repeat("a long prompt ", 68_000)}}})
	k.ProduceValues(topic, values...)
	h.start(nil)

	kafkatest.Eventually(t, 30*time.Second, "10 events delivered", func() bool { return len(h.capture.UUIDs()) == 10 })
	kafkatest.Eventually(t, 10*time.Second, "commit to the end", func() bool { return k.Committed(group, topic)[0] == 10 })
	for _, ev := range h.capture.Events() {
		var truncated bool
		ev.Prop(event.PropTruncated, &truncated)
		big := ev.UUID == event.ID("c-4", event.Source{}) || ev.UUID == event.ID("c-7", event.Source{})
		if truncated != big {
			t.Errorf("event %s: truncated = %v, want %v", ev.UUID, truncated, big)
		}
		if ev.Size > event.MaxBytes+8192 {
			t.Errorf("event %s is %d bytes", ev.UUID, ev.Size)
		}
	}
	if dead := k.ReadAll(dlqT, 1, time.Second); len(dead) != 0 {
		t.Errorf("%d records dead-lettered, want 0", len(dead))
	}
	logOutcome(t, h.capture, 10, "c")
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A record read again keeps its uuid, timestamp and distinct id; only the
// enrichment may differ.
func TestReplayKeepsIdentity(t *testing.T) {
	k := kafkatest.New(t, 1, topic, dlqT)
	h := newHarness(t, k)
	k.ProduceValues(topic, records("c", 1)...)

	first := h.start(map[string]string{"ENRICHER_STATIC_PROPERTIES": "tier=free"})
	kafkatest.Eventually(t, 30*time.Second, "first delivery", func() bool { return len(h.capture.Events()) == 1 })
	first.stop(t)

	// A second group reads the record again, as a restart before the
	// commit would.
	h.start(map[string]string{"ENRICHER_STATIC_PROPERTIES": "tier=pro", "ENRICHER_KAFKA_GROUP": "replay"})
	kafkatest.Eventually(t, 30*time.Second, "second delivery", func() bool { return len(h.capture.Events()) == 2 })

	evs := h.capture.Events()
	a, b := evs[0], evs[1]
	if a.UUID != b.UUID || a.Timestamp != b.Timestamp || a.DistinctID != b.DistinctID || a.Event != b.Event {
		t.Errorf("identity changed on replay: %s %s %s %s vs %s %s %s %s",
			a.UUID, a.Timestamp, a.DistinctID, a.Event, b.UUID, b.Timestamp, b.DistinctID, b.Event)
	}
	var ta, tb string
	a.Prop("tier", &ta)
	b.Prop("tier", &tb)
	if ta != "free" || tb != "pro" {
		t.Errorf("tier = %q then %q, want free then pro", ta, tb)
	}
}

// The capture server's view of every uuid a test expects.
func missing(srv *capturetest.Server, prefix string, n int) int {
	got := srv.UUIDs()
	miss := 0
	for i := range n {
		if got[event.ID(prefix+"-"+itoa(i), event.Source{})] == 0 {
			miss++
		}
	}
	return miss
}

func itoa(i int) string { return strconv.Itoa(i) }
