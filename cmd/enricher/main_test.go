package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/kafkatest"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

// These tests run the enricher binary as a separate process, so that they
// can kill it with SIGKILL or stop it with SIGTERM as an orchestrator does.

const (
	topic = "llm-calls"
	dlqT  = "llm-calls.dlq"
	group = "enricher-process-test"
)

// binary is the enricher built once for all tests in this file.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "enricher-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "enricher")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	if !raceEnabled {
		build = exec.Command("go", "build", "-o", binary, ".")
	}
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the enricher:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running enricher process.
type proc struct {
	cmd    *exec.Cmd
	stderr *testsupport.Buffer
	exited chan struct{}
	err    error
}

// startProc starts the binary with the environment env and nothing else
// from the test's environment but PATH and HOME.
func startProc(t *testing.T, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &proc{cmd: cmd, stderr: &testsupport.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the enricher: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("ENRICHER_TEST_LOGS") != "" {
			t.Logf("enricher log:\n%s", p.stderr.String())
		}
	})
	return p
}

func (p *proc) kill() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// wait returns the exit code, failing the test if the process is still
// running after timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("enricher still running %s after it was told to stop", timeout)
		return -1
	}
}

// baseEnv points an enricher at the broker and the capture server.
func baseEnv(k *kafkatest.Cluster, capture *capturetest.Server) map[string]string {
	return map[string]string{
		"ENRICHER_KAFKA_BROKERS":           k.Addrs()[0],
		"ENRICHER_KAFKA_TOPICS":            topic,
		"ENRICHER_KAFKA_GROUP":             group,
		"ENRICHER_DLQ_TOPIC":               dlqT,
		"ENRICHER_POSTHOG_API_KEY":         capture.Key,
		"ENRICHER_POSTHOG_HOST":            capture.URL,
		"ENRICHER_POSTHOG_FLUSH_INTERVAL":  "100ms",
		"ENRICHER_COMMIT_INTERVAL":         "100ms",
		"ENRICHER_HTTP_ADDR":               "127.0.0.1:0",
		"ENRICHER_SHUTDOWN_TIMEOUT":        "15s",
		"ENRICHER_KAFKA_REBALANCE_TIMEOUT": "20s",
		"ENRICHER_REVOKE_TIMEOUT":          "10s",
		"ENRICHER_KAFKA_SESSION_TIMEOUT":   "6s",
		"ENRICHER_LOG_LEVEL":               "info",
		"ENRICHER_LOG_FORMAT":              "text",
	}
}

// callRecords returns n records with ids prefix-0 … prefix-(n-1).
func callRecords(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"id":"%s-%d","timestamp":"2026-05-01T10:00:00Z","distinct_id":"u-%d",`+
			`"provider":"openai","model":"gpt-4o-mini","input":[{"role":"user","content":"hi"}],`+
			`"output_choices":[{"role":"assistant","content":"hello"}],"input_tokens":12,"output_tokens":5,`+
			`"properties":{"conversation_id":"cv-9"}}`, prefix, i, i%7)
	}
	return out
}

// uuidFor returns the uuid that the record with call id prefix-i gets.
func uuidFor(prefix string, i int) string {
	return event.ID(fmt.Sprintf("%s-%d", prefix, i), event.Source{})
}

// layout maps each partition to the uuids of its records in offset order.
type layout map[int32][]string

// produceSpread writes n records with ids prefix-0 … prefix-(n-1)
// round-robin over the partitions and returns where each one went.
func produceSpread(t *testing.T, k *kafkatest.Cluster, partitions int32, prefix string, n int) layout {
	values := callRecords(prefix, n)
	recs := make([]*kgo.Record, n)
	where := make(layout)
	for i, v := range values {
		p := int32(i) % partitions
		recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: v}
		where[p] = append(where[p], uuidFor(prefix, i))
	}
	cl := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	return where
}

// commitAudit polls the group's committed offsets and records every commit
// that passed a record whose event the capture server had not yet
// accepted, and every commit that moved back.
type commitAudit struct {
	mu         sync.Mutex
	violations []string
	highest    map[int32]int64
	stop, done chan struct{}
}

func auditCommits(t *testing.T, k *kafkatest.Cluster, capture *capturetest.Server, where layout) *commitAudit {
	a := &commitAudit{highest: make(map[int32]int64), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			select {
			case <-a.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			committed, err := k.CommittedE(group, topic)
			if err != nil {
				continue
			}
			// Read the deliveries after the commits: anything a commit
			// covers was accepted before it.
			delivered := capture.UUIDs()
			a.mu.Lock()
			for p, offset := range committed {
				a.audit(p, offset, where[p], delivered)
			}
			a.mu.Unlock()
		}
	}()
	t.Cleanup(a.close)
	return a
}

func (a *commitAudit) audit(p int32, offset int64, uuids []string, delivered map[string]int) {
	if offset < a.highest[p] {
		a.violations = append(a.violations, fmt.Sprintf("partition %d: commit moved back from %d to %d", p, a.highest[p], offset))
	}
	a.highest[p] = max(a.highest[p], offset)
	for i := range min(int(offset), len(uuids)) {
		if delivered[uuids[i]] == 0 {
			a.violations = append(a.violations, fmt.Sprintf("partition %d: commit at %d passed offset %d, not yet delivered", p, offset, i))
			return
		}
	}
}

func (a *commitAudit) close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
}

func (a *commitAudit) check(t *testing.T) {
	t.Helper()
	a.close()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, v := range a.violations {
		t.Error(v)
	}
}

// missing returns the ids of prefix-0 … prefix-(n-1) whose events never
// arrived.
func missing(capture *capturetest.Server, prefix string, n int) []int {
	delivered := capture.UUIDs()
	var out []int
	for i := range n {
		if delivered[uuidFor(prefix, i)] == 0 {
			out = append(out, i)
		}
	}
	return out
}

// committedAll reports whether every partition's commit reached its end.
func committedAll(k *kafkatest.Cluster, where layout) bool {
	committed, err := k.CommittedE(group, topic)
	if err != nil {
		return false
	}
	for p, uuids := range where {
		if committed[p] != int64(len(uuids)) {
			return false
		}
	}
	return true
}

// slowEnv is baseEnv with few records in flight, so that delivery takes
// several round trips and commits happen between them.
func slowEnv(k *kafkatest.Cluster, capture *capturetest.Server) map[string]string {
	env := baseEnv(k, capture)
	env["ENRICHER_MAX_IN_FLIGHT"] = "200"
	return env
}

// A process killed with SIGKILL mid-delivery loses nothing: its successor
// in the group delivers every record the first one did not commit, under
// the same uuids, and no commit ever passes an undelivered record.
func TestKillAndRestartLosesNothing(t *testing.T) {
	const n = 1000
	k := kafkatest.New(t, 1, topic, dlqT)
	capture := capturetest.New(t)
	capture.Latency(2 * time.Second)
	where := produceSpread(t, k, 1, "kill", n)
	audit := auditCommits(t, k, capture, where)

	first := startProc(t, slowEnv(k, capture))
	kafkatest.Eventually(t, 60*time.Second, "about 500 events delivered", func() bool {
		return len(capture.UUIDs()) >= n/2
	})
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.wait(t, 10*time.Second)
	before := len(capture.UUIDs())
	committedBefore := k.Committed(group, topic)[0]

	startProc(t, slowEnv(k, capture))
	kafkatest.Eventually(t, 90*time.Second, "every event delivered after the restart", func() bool {
		return len(missing(capture, "kill", n)) == 0
	})
	kafkatest.Eventually(t, 30*time.Second, "offsets committed to the end", func() bool {
		return committedAll(k, where)
	})
	audit.check(t)
	if before == n {
		t.Errorf("all %d events arrived before the kill; the test did not exercise a restart", n)
	}
	if got := len(capture.UUIDs()); got != n {
		t.Errorf("%d distinct uuids arrived, want %d", got, n)
	}
	t.Logf("sent %d records; %d events delivered and %d committed before the kill; %d delivered in all, %d of them repeats",
		n, before, committedBefore, len(capture.Events()), len(capture.Events())-n)
}

// A second instance joining the group while the first has batches in
// flight takes over partitions without losing a record.
func TestSecondInstanceLosesNothing(t *testing.T) {
	const n = 2000
	k := kafkatest.New(t, 6, topic, dlqT)
	capture := capturetest.New(t)
	capture.Latency(2 * time.Second)
	where := produceSpread(t, k, 6, "join", n)
	audit := auditCommits(t, k, capture, where)

	first := startProc(t, slowEnv(k, capture))
	kafkatest.Eventually(t, 60*time.Second, "500 events delivered", func() bool {
		return len(capture.UUIDs()) >= 500
	})
	second := startProc(t, slowEnv(k, capture))
	kafkatest.Eventually(t, 90*time.Second, "every event delivered", func() bool {
		return len(missing(capture, "join", n)) == 0
	})
	kafkatest.Eventually(t, 30*time.Second, "offsets committed to the end", func() bool {
		return committedAll(k, where)
	})
	if !strings.Contains(second.stderr.String(), "partitions assigned") {
		t.Error("the second instance was never assigned partitions; the test did not exercise a rebalance")
	}
	t.Logf("sent %d records; delivered %d events, %d of them repeats; lost %d",
		n, len(capture.Events()), len(capture.Events())-len(capture.UUIDs()), len(missing(capture, "join", n)))
	audit.check(t)
	for _, p := range []*proc{first, second} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("instance exited with %d after SIGTERM, want 0", code)
		}
	}
}

// SIGTERM with batches in flight: fetching stops, the batches are
// delivered and committed, and the process exits 0 within the timeout.
func TestSIGTERMDeliversInFlight(t *testing.T) {
	const n = 300
	k := kafkatest.New(t, 1, topic, dlqT)
	capture := capturetest.New(t)
	capture.Latency(3 * time.Second)
	k.ProduceValues(topic, callRecords("term", n)...)

	p := startProc(t, baseEnv(k, capture))
	kafkatest.Eventually(t, 30*time.Second, "a batch in flight", func() bool {
		return capture.Requests() > 0
	})
	stopAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code := p.wait(t, 30*time.Second)
	took := time.Since(stopAt)

	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if took > 15*time.Second {
		t.Errorf("exited %s after SIGTERM, past ENRICHER_SHUTDOWN_TIMEOUT=15s", took.Round(time.Millisecond))
	}
	delivered := len(capture.UUIDs())
	if delivered == 0 {
		t.Fatal("no event delivered before the exit")
	}
	committed := k.Committed(group, topic)[0]
	if committed != int64(delivered) {
		t.Errorf("committed offset %d, want %d: every delivered event of the partition, in order", committed, delivered)
	}
	if !strings.Contains(p.stderr.String(), "left the consumer group") {
		t.Error("the log does not say the instance left the group")
	}
	t.Logf("sent %d records; %d delivered and committed before the exit %s after SIGTERM",
		n, delivered, took.Round(time.Millisecond))
}

// SIGTERM while PostHog accepts connections and never responds: the process
// exits before the deadline, commits nothing undelivered, and logs how many
// events were not sent.
func TestSIGTERMWithHangingServer(t *testing.T) {
	const n = 50
	k := kafkatest.New(t, 1, topic, dlqT)
	capture := capturetest.New(t)
	capture.Hang()
	k.ProduceValues(topic, callRecords("hang", n)...)

	env := baseEnv(k, capture)
	env["ENRICHER_SHUTDOWN_TIMEOUT"] = "5s"
	env["ENRICHER_REVOKE_TIMEOUT"] = "2s"
	p := startProc(t, env)
	kafkatest.Eventually(t, 30*time.Second, "a request waiting on the server", func() bool {
		return capture.Requests() > 0
	})
	stopAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code := p.wait(t, 30*time.Second)
	took := time.Since(stopAt)

	if took > 6*time.Second {
		t.Errorf("exited %s after SIGTERM, want within ENRICHER_SHUTDOWN_TIMEOUT=5s", took.Round(time.Millisecond))
	}
	if code == 0 {
		t.Error("exit code 0 with events undelivered, want non-zero")
	}
	if committed := k.Committed(group, topic); committed[0] != 0 {
		t.Errorf("committed offset %d with nothing delivered, want none", committed[0])
	}
	t.Logf("sent %d records; none delivered; exit code %d %s after SIGTERM, nothing committed",
		n, code, took.Round(time.Millisecond))
	log := p.stderr.String()
	if !strings.Contains(log, "events not sent") || !strings.Contains(log, "events=") {
		t.Errorf("the log does not count the events not sent:\n%s", lastLines(log, 5))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
