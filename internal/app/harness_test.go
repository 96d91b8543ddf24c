package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/kafkatest"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

const (
	topic = "llm-calls"
	dlqT  = "llm-calls.dlq"
	group = "enricher-test"
)

// harness runs the enricher in-process against a kfake broker and a
// capture server.
type harness struct {
	t       *testing.T
	kafka   *kafkatest.Cluster
	capture *capturetest.Server
	env     map[string]string
	// logHook, when set, receives every record the instances log.
	logHook func(slog.Record)
}

func newHarness(t *testing.T, kafka *kafkatest.Cluster) *harness {
	capture := capturetest.New(t)
	return &harness{
		t: t, kafka: kafka, capture: capture,
		env: map[string]string{
			"ENRICHER_KAFKA_BROKERS":           kafka.Addrs()[0],
			"ENRICHER_KAFKA_TOPICS":            topic,
			"ENRICHER_KAFKA_GROUP":             group,
			"ENRICHER_DLQ_TOPIC":               dlqT,
			"ENRICHER_POSTHOG_API_KEY":         capture.Key,
			"ENRICHER_POSTHOG_HOST":            capture.URL,
			"ENRICHER_POSTHOG_FLUSH_INTERVAL":  "50ms",
			"ENRICHER_COMMIT_INTERVAL":         "100ms",
			"ENRICHER_HTTP_ADDR":               "",
			"ENRICHER_SHUTDOWN_TIMEOUT":        "10s",
			"ENRICHER_KAFKA_REBALANCE_TIMEOUT": "20s",
			"ENRICHER_REVOKE_TIMEOUT":          "10s",
			"ENRICHER_KAFKA_SESSION_TIMEOUT":   "10s",
		},
	}
}

// instance is one running enricher.
type instance struct {
	cancel context.CancelFunc
	done   chan error
}

// config parses the harness environment plus extra.
func (h *harness) config(extra map[string]string) config.Config {
	h.t.Helper()
	environ := maps.Clone(h.env)
	maps.Copy(environ, extra)
	cfg, err := config.Parse(environ)
	if err != nil {
		h.t.Fatalf("config: %v", err)
	}
	return cfg
}

// start runs an enricher with the harness environment plus extra.
func (h *harness) start(extra map[string]string) *instance {
	h.t.Helper()
	cfg := h.config(extra)
	var handler slog.Handler = slog.NewTextHandler(testWriter(h.t), &slog.HandlerOptions{Level: slog.LevelInfo})
	if h.logHook != nil {
		handler = hookHandler{Handler: handler, hook: h.logHook}
	}
	log := slog.New(handler)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- Run(ctx, cfg, log, io.Discard) }()
	h.t.Cleanup(func() { in.stop(h.t) })
	return in
}

// stop shuts the instance down and returns Run's error.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		in.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("enricher did not stop within 60s")
		return nil
	}
}

// records returns n version 1 records with ids prefix-0 … prefix-(n-1).
func records(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"id":"%s-%d","timestamp":"2026-05-01T10:00:00Z","distinct_id":"u-%d","provider":"openai","model":"gpt-4o-mini","input":[{"role":"user","content":"hi"}],"output_choices":[{"role":"assistant","content":"hello"}],"input_tokens":12,"output_tokens":5,"properties":{"conversation_id":"cv-9"}}`, prefix, i, i%7)
	}
	return out
}

// spread produces the values round-robin over partitions.
func spread(k *kafkatest.Cluster, partitions int32, values [][]byte) {
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: v}
	}
	cl := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < len(recs); i += 5000 {
		if err := cl.ProduceSync(ctx, recs[i:min(i+5000, len(recs))]...).FirstErr(); err != nil {
			panic(err)
		}
	}
}

func sum(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// testWriter sends log lines to t.Log while the test runs, and drops them
// after it ends.
func testWriter(t *testing.T) io.Writer {
	w := &tlog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

type tlog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tlog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && os.Getenv("ENRICHER_TEST_LOGS") != "" {
		w.t.Log(string(p))
	}
	return len(p), nil
}

// hookHandler passes each record to hook before its handler.
type hookHandler struct {
	slog.Handler
	hook func(slog.Record)
}

func (h hookHandler) Handle(ctx context.Context, r slog.Record) error {
	h.hook(r)
	return h.Handler.Handle(ctx, r)
}

func (h hookHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return hookHandler{Handler: h.Handler.WithAttrs(attrs), hook: h.hook}
}

func (h hookHandler) WithGroup(name string) slog.Handler {
	return hookHandler{Handler: h.Handler.WithGroup(name), hook: h.hook}
}

// lockedBuffer collects log lines from many goroutines.
type lockedBuffer struct{ testsupport.Buffer }
