package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func startTestCapture(t *testing.T, maxEvents int64) *Capture {
	t.Helper()
	c, err := StartCapture(CaptureConfig{APIKey: "phc_k", MaxEvents: maxEvents, Lifetime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func post(t *testing.T, url string, body []byte) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func batchBody(key string, events ...string) []byte {
	return []byte(`{"api_key":"` + key + `","batch":[` + strings.Join(events, ",") + `]}`)
}

const captureEvent = `{"uuid":"0b6c7f4e-2f1e-4f57-9d49-0d8a0c3b7c11","event":"$ai_generation","distinct_id":"u","timestamp":"2026-05-01T10:00:00Z","properties":{"$ai_model":"m"}}`

func TestCaptureFollowsBatchContract(t *testing.T) {
	c := startTestCapture(t, 100)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(batchBody("phc_k", captureEvent, captureEvent))
	zw.Close()

	cases := []struct {
		name string
		path string
		body []byte
		want int
	}{
		{"accepted", "/batch/", batchBody("phc_k", captureEvent), http.StatusOK},
		{"gzip detected by magic bytes", "/batch/", zipped.Bytes(), http.StatusOK},
		{"missing key", "/batch/", []byte(`{"batch":[` + captureEvent + `]}`), http.StatusUnauthorized},
		{"unknown key", "/batch/", batchBody("phc_other", captureEvent), http.StatusForbidden},
		{"empty batch", "/batch/", batchBody("phc_k"), http.StatusBadRequest},
		{"other path", "/capture/", batchBody("phc_k", captureEvent), http.StatusNotFound},
		{"body over 20 MiB", "/batch/", bytes.Repeat([]byte(" "), maxBodyBytes+1), http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		if got := post(t, c.URL+tc.path, tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := c.Events(); got != 3 {
		t.Errorf("Events() = %d, want 3 from the accepted requests", got)
	}
}

func TestCaptureRejectsPastMaxEvents(t *testing.T) {
	c := startTestCapture(t, 2)
	if got := post(t, c.URL+"/batch/", batchBody("phc_k", captureEvent, captureEvent)); got != http.StatusOK {
		t.Fatalf("status %d, want 200 within the bound", got)
	}
	if got := post(t, c.URL+"/batch/", batchBody("phc_k", captureEvent)); got != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503 past the bound", got)
	}
}

func TestCaptureMeasuresLatencyOfStampedRecords(t *testing.T) {
	c := startTestCapture(t, 100)
	rec := NewGenerator(7).Record(3, true)
	sent := time.Now().Add(-250 * time.Millisecond).UnixMicro()
	stamped := StampSent(rec, sent)
	var call map[string]any
	if err := json.Unmarshal(stamped, &call); err != nil {
		t.Fatalf("stamped record is not JSON: %v", err)
	}
	got := call["properties"].(map[string]any)[SentProperty]
	if got != strconv.FormatInt(sent, 10) {
		t.Fatalf("%s = %v, want %d", SentProperty, got, sent)
	}

	ev := `{"uuid":"0b6c7f4e-2f1e-4f57-9d49-0d8a0c3b7c11","event":"e","distinct_id":"u","properties":{"` +
		SentProperty + `":"` + strconv.FormatInt(sent, 10) + `"}}`
	if status := post(t, c.URL+"/batch/", batchBody("phc_k", ev)); status != http.StatusOK {
		t.Fatalf("status %d, want 200", status)
	}
	lat := c.Latencies(sent)
	if len(lat) != 1 || lat[0] < 250*time.Millisecond || lat[0] > 10*time.Second {
		t.Errorf("latencies = %v, want one of at least 250ms", lat)
	}
	if got := c.Latencies(sent + 1); len(got) != 0 {
		t.Errorf("latencies from after the produce time = %v, want none", got)
	}
}

func TestGeneratorRecordsAreRealistic(t *testing.T) {
	gen := NewGenerator(1)
	var total int
	const n = 200
	for i := range n {
		rec := gen.Record(i, false)
		total += len(rec)
		var call llmCall
		if err := json.Unmarshal(rec, &call); err != nil {
			t.Fatalf("record %d is not JSON: %v", i, err)
		}
		if i == 0 && !strings.HasPrefix(call.DistinctID, "new-") {
			t.Errorf("record 0 distinct_id = %q, want a user of its own", call.DistinctID)
		}
	}
	if avg := total / n; avg < 1800 || avg > 2600 {
		t.Errorf("average record size %d bytes, want about 2 KB", avg)
	}
	text := string(gen.Record(n, false))
	for _, want := range []string{`\"`, `\n`} {
		if !strings.Contains(text, want) {
			t.Errorf("record has no %s in its text", want)
		}
	}
}
