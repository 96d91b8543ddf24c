package metrics

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// batchBody returns a posthog-go style body of n events of about 2 KB
// each, gzipped as posthog-go sends it, and its uncompressed size.
func batchBody(b *testing.B, n int) ([]byte, int) {
	b.Helper()
	events := make([]map[string]any, n)
	for i := range events {
		events[i] = map[string]any{
			"uuid": "0190c6c2-5a8e-7000-8000-00000000000" + string(rune('0'+i%10)), "event": "$ai_generation",
			"distinct_id": "u-1", "timestamp": "2026-05-01T10:00:00Z",
			"properties": map[string]any{
				"$ai_model": "gpt-4o-mini", "$ai_input_tokens": 12, "$ai_output_tokens": 5,
				"$ai_input":          []any{map[string]any{"role": "user", "content": strings.Repeat("a prompt, with \"quotes\" ", 40)}},
				"$ai_output_choices": []any{map[string]any{"role": "assistant", "content": strings.Repeat("an answer ", 80)}},
			},
		}
	}
	raw, err := json.Marshal(map[string]any{"api_key": "phc_x", "historical_migration": false, "batch": events})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	return buf.Bytes(), len(raw)
}

// BenchmarkCountEvents measures what the transport adds to each PostHog
// request to count its events: a gunzip and a byte scan of the body. The
// MB/s figure is of uncompressed JSON.
func BenchmarkCountEvents(b *testing.B) {
	body, size := batchBody(b, 100)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/batch/", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "gzip")
		if n, ok := countEvents(req); !ok || n != 100 {
			b.Fatalf("counted %d (ok %v), want 100", n, ok)
		}
	}
}

// BenchmarkGzipBatch is the compression that posthog-go does for the same
// body, for comparison with BenchmarkCountEvents.
func BenchmarkGzipBatch(b *testing.B) {
	raw := plainBatchBody(b, 100)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(raw)
		zw.Close()
	}
}

// plainBatchBody is batchBody without compression.
func plainBatchBody(b *testing.B, n int) []byte {
	b.Helper()
	body, _ := batchBody(b, n)
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkCountEventsPlain is BenchmarkCountEvents for a body sent
// without compression: the byte scan alone.
func BenchmarkCountEventsPlain(b *testing.B) {
	raw := plainBatchBody(b, 100)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/batch/", bytes.NewReader(raw))
		if n, ok := countEvents(req); !ok || n != 100 {
			b.Fatalf("counted %d (ok %v), want 100", n, ok)
		}
	}
}
