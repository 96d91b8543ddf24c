package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/examples"
	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/dlq"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/kafkatest"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

// kcatPath returns the kcat binary. Without kcat the tests that publish
// with it are skipped, unless ENRICHER_TEST_REQUIRE_KCAT is set, as CI
// does, to make a missing kcat a failure.
func kcatPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err == nil {
		return path
	}
	if os.Getenv("ENRICHER_TEST_REQUIRE_KCAT") != "" {
		t.Fatalf("kcat not found and ENRICHER_TEST_REQUIRE_KCAT is set: install it (apt-get install kcat)")
	}
	t.Skip("kcat not found: install it (apt-get install kcat) to run this test")
	return ""
}

// kcatProduce publishes each line of lines as one record with kcat, a
// librdkafka client, so that the enricher reads what another client wrote.
func kcatProduce(t *testing.T, broker, topic string, lines []string, extra ...string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "records.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-P", "-b", broker, "-t", topic, "-l"}, extra...)
	out, err := exec.Command(kcatPath(t), append(args, file)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
}

// Records published with kcat become events under the uuids derived from
// their ids. A record that is not JSON goes to the dead-letter topic with
// its bytes and the headers kcat set.
func TestKcatRecordsDelivered(t *testing.T) {
	kcatPath(t)
	k := kafkatest.New(t, 1, topic, dlqT)
	capture := capturetest.New(t)
	startProc(t, baseEnv(k, capture))

	lines := []string{
		`{"id":"kcat-0","timestamp":"2026-05-01T10:00:00Z","distinct_id":"u-1","provider":"openai","model":"gpt-4o-mini","input_tokens":7,"output_tokens":2}`,
		`not json at all`,
		`{"id":"kcat-2","timestamp":1777629600000,"model":"claude-sonnet-4","provider":"anthropic","trace_id":"tr-9","latency_ms":1250}`,
	}
	kcatProduce(t, k.Addrs()[0], topic, lines, "-H", "source=kcat")

	kafkatest.Eventually(t, 30*time.Second, "2 events delivered", func() bool {
		return len(capture.UUIDs()) == 2
	})
	byUUID := make(map[string]capturetest.Event)
	for _, ev := range capture.Events() {
		byUUID[ev.UUID] = ev
	}
	first, ok := byUUID[uuidFor("kcat", 0)]
	if !ok {
		t.Fatalf("no event with the uuid of kcat-0; got %v", capture.UUIDs())
	}
	if first.DistinctID != "u-1" || first.Timestamp != "2026-05-01T10:00:00Z" {
		t.Errorf("kcat-0: distinct_id %q timestamp %q, want u-1 and the record's timestamp", first.DistinctID, first.Timestamp)
	}
	third, ok := byUUID[uuidFor("kcat", 2)]
	if !ok {
		t.Fatal("no event with the uuid of kcat-2")
	}
	var latency float64
	third.Prop("$ai_latency", &latency)
	if latency != 1.25 {
		t.Errorf("kcat-2: $ai_latency = %v, want 1.25 seconds from latency_ms", latency)
	}
	var personless bool
	if !third.Prop("$process_person_profile", &personless) || personless || third.DistinctID != "tr-9" {
		t.Errorf("kcat-2 without distinct_id: distinct_id %q, $process_person_profile %v; want the trace id and false", third.DistinctID, personless)
	}

	dead := k.ReadAll(dlqT, 1, 20*time.Second)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if string(dead[0].Value) != lines[1] {
		t.Errorf("dead letter value = %q, want %q unchanged", dead[0].Value, lines[1])
	}
	headers := make(map[string]string)
	for _, h := range dead[0].Headers {
		headers[h.Key] = string(h.Value)
	}
	if headers[dlq.HeaderOffset] != "1" || headers[dlq.HeaderError] == "" {
		t.Errorf("dead letter headers %v, want offset 1 and an error", headers)
	}
	if headers["source"] != "kcat" {
		t.Errorf("dead letter lost the record's own header: %v", headers)
	}
	kafkatest.Eventually(t, 10*time.Second, "offset committed past all 3 records", func() bool {
		return k.Committed(group, topic)[0] == 3
	})
}

// The embedded mode, the README's first command, starts a broker,
// publishes the sample records and prints their events on stdout. kcat can
// then publish more to the same broker.
func TestEmbeddedDefault(t *testing.T) {
	kcatPath(t)
	addr := freeAddr(t)
	cmd := exec.Command(binary)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"ENRICHER_EMBEDDED=true",
		"ENRICHER_EMBEDDED_ADDR=" + addr,
		"ENRICHER_HTTP_ADDR=127.0.0.1:0",
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testsupport.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("enricher log:\n%s", stderr.String())
		}
	})
	events := readEvents(stdout)

	samples := bytes.Count(bytes.TrimSpace(examples.Records), []byte("\n")) + 1
	kafkatest.Eventually(t, 30*time.Second, "the sample events printed", func() bool {
		return events.count() == samples
	})
	kcatProduce(t, addr, topic, []string{`{"id":"from-kcat","distinct_id":"u-7","model":"gpt-4o-mini"}`})
	kafkatest.Eventually(t, 30*time.Second, "the kcat record printed", func() bool {
		return events.has(event.ID("from-kcat", event.Source{}))
	})
	if !strings.Contains(stderr.String(), "kcat -P -b "+addr) {
		t.Error("the log does not show how to publish with kcat")
	}
}

// printed collects the events the stdout sink writes.
type printed struct {
	mu    sync.Mutex
	uuids map[string]bool
}

func readEvents(r io.Reader) *printed {
	p := &printed{uuids: make(map[string]bool)}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev struct {
				UUID string `json:"uuid"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.UUID != "" {
				p.mu.Lock()
				p.uuids[ev.UUID] = true
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *printed) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.uuids)
}

func (p *printed) has(uuid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.uuids[uuid]
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
