// Package capturetest runs an HTTP server that follows PostHog's capture
// contract for POST /batch/, for tests: gzip bodies, size limits,
// whole-batch rejection of one invalid event, 401 and 403 for keys, and
// injectable outages and latency.
package capturetest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Limits of PostHog's capture service.
const (
	MaxBodyBytes         = 20 << 20  // a request body on the wire
	MaxDecompressedBytes = 100 << 20 // a request body after gunzip
	MaxAIEventBytes      = 983_040   // one $ai_* event
)

// Event is an event the server accepted.
type Event struct {
	UUID       string                     `json:"uuid"`
	Event      string                     `json:"event"`
	DistinctID string                     `json:"distinct_id"`
	Timestamp  string                     `json:"timestamp"`
	Properties map[string]json.RawMessage `json:"properties"`
	// Size is the length of the event's JSON in the request.
	Size int `json:"-"`
}

// Server is a PostHog capture stand-in.
type Server struct {
	*httptest.Server
	// Key is the API key the server accepts at start; any other key gets
	// 403. SetKey changes it.
	Key string

	mu       sync.Mutex
	key      string
	events   []Event
	statuses map[int]int
	gzipped  int
	// fault, when set, answers a request before the contract is applied.
	fault func(n int) (status int, delay time.Duration)
	// invalid, when set, marks events that PostHog would reject with 400.
	invalid func(Event) bool
	// unavailable, when set, marks events whose request gets 503.
	unavailable func(Event) bool
	requests    int
	hang        chan struct{}
	// inFlight counts the events in requests not yet answered; peak is
	// its maximum.
	inFlight, peak int
}

// New starts a server that accepts the API key "phc_test".
func New(t testing.TB) *Server {
	s := &Server{Key: "phc_test", key: "phc_test", statuses: make(map[int]int)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.Release()
		s.Server.CloseClientConnections()
		s.Server.Close()
	})
	return s
}

// Fault sets a function that may answer request n (from 1) with a status
// after a delay, before the contract is applied. A status of 0 applies the
// contract after the delay.
func (s *Server) Fault(f func(n int) (status int, delay time.Duration)) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Latency delays every answer by d.
func (s *Server) Latency(d time.Duration) {
	s.Fault(func(int) (int, time.Duration) { return 0, d })
}

// Invalid sets which events PostHog would reject. One such event makes
// the whole request fail with 400, as the real service does.
func (s *Server) Invalid(f func(Event) bool) {
	s.mu.Lock()
	s.invalid = f
	s.mu.Unlock()
}

// Unavailable sets which events the server cannot take for now: a request
// that contains one gets 503, as during an outage, and nothing of it is
// stored. Set nil to end it.
func (s *Server) Unavailable(f func(Event) bool) {
	s.mu.Lock()
	s.unavailable = f
	s.mu.Unlock()
}

// Hang makes the server accept requests and never answer them, until
// Release.
func (s *Server) Hang() {
	s.mu.Lock()
	if s.hang == nil {
		s.hang = make(chan struct{})
	}
	s.mu.Unlock()
}

// Release ends Hang.
func (s *Server) Release() {
	s.mu.Lock()
	if s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
	s.mu.Unlock()
}

// SetKey sets the API key the server accepts.
func (s *Server) SetKey(key string) {
	s.mu.Lock()
	s.key = key
	s.mu.Unlock()
}

// Requests returns how many requests arrived, answered or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Events returns the accepted events, in order of arrival.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// UUIDs counts the accepted events by uuid.
func (s *Server) UUIDs() map[string]int {
	m := make(map[string]int)
	for _, e := range s.Events() {
		m[e.UUID]++
	}
	return m
}

// Statuses counts the responses by status code.
func (s *Server) Statuses() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[int]int, len(s.statuses))
	for k, v := range s.statuses {
		m[k] = v
	}
	return m
}

// Gzipped returns how many requests had a gzip body.
func (s *Server) Gzipped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gzipped
}

// PeakInFlight returns the most events that were in unanswered requests at
// one time.
func (s *Server) PeakInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		s.reply(w, http.StatusBadRequest, "invalid_body", err.Error())
		return
	}
	events := countEvents(body)
	s.mu.Lock()
	s.requests++
	n, fault, hang := s.requests, s.fault, s.hang
	s.inFlight += events
	s.peak = max(s.peak, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight -= events
		s.mu.Unlock()
	}()

	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	if fault != nil {
		status, delay := fault(n)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		if status != 0 {
			s.reply(w, status, "injected", "injected fault")
			return
		}
	}
	status, code, msg := s.capture(r, body)
	s.reply(w, status, code, msg)
}

// countEvents returns the length of the request's batch, or 0 when the
// body does not decode.
func countEvents(body []byte) int {
	if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0
		}
		if body, err = io.ReadAll(io.LimitReader(zr, MaxDecompressedBytes)); err != nil {
			return 0
		}
	}
	var req struct {
		Batch []json.RawMessage `json:"batch"`
	}
	json.Unmarshal(body, &req)
	return len(req.Batch)
}

func (s *Server) reply(w http.ResponseWriter, status int, code, msg string) {
	s.mu.Lock()
	s.statuses[status]++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusOK {
		io.WriteString(w, `{"status":"Ok"}`)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"status": status, "code": code, "error": msg})
}

// capture applies the contract and stores the events of a valid request.
func (s *Server) capture(r *http.Request, body []byte) (int, string, string) {
	if r.Method != http.MethodPost || r.URL.Path != "/batch/" {
		return http.StatusNotFound, "not_found", "not found"
	}
	if len(body) > MaxBodyBytes {
		return http.StatusRequestEntityTooLarge, "payload_too_large", "request body too large"
	}
	// The service detects gzip by its magic bytes, whatever the headers say.
	if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return http.StatusBadRequest, "invalid_gzip", err.Error()
		}
		body, err = io.ReadAll(io.LimitReader(zr, MaxDecompressedBytes+1))
		if err != nil {
			return http.StatusBadRequest, "invalid_gzip", err.Error()
		}
		if len(body) > MaxDecompressedBytes {
			return http.StatusRequestEntityTooLarge, "payload_too_large", "decompressed body too large"
		}
		s.mu.Lock()
		s.gzipped++
		s.mu.Unlock()
	}

	var req struct {
		APIKey string            `json:"api_key"`
		Batch  []json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return http.StatusBadRequest, "invalid_json", err.Error()
	}
	s.mu.Lock()
	key := s.key
	s.mu.Unlock()
	switch {
	case req.APIKey == "":
		return http.StatusUnauthorized, "missing_api_key", "API key is missing"
	case req.APIKey != key:
		return http.StatusForbidden, "ingest_key_unknown", "API key is not valid"
	case len(req.Batch) == 0:
		return http.StatusBadRequest, "empty_batch", "batch is empty"
	}

	events := make([]Event, 0, len(req.Batch))
	for i, raw := range req.Batch {
		ev, status, msg := s.check(raw)
		if status != http.StatusOK {
			return status, "invalid_event", fmt.Sprintf("event %d: %s", i, msg)
		}
		events = append(events, ev)
	}
	s.mu.Lock()
	unavailable := s.unavailable
	s.mu.Unlock()
	for _, ev := range events {
		if unavailable != nil && unavailable(ev) {
			return http.StatusServiceUnavailable, "unavailable", "try again later"
		}
	}
	s.mu.Lock()
	s.events = append(s.events, events...)
	s.mu.Unlock()
	return http.StatusOK, "", ""
}

// check validates one event. Any invalid event fails the whole request.
func (s *Server) check(raw json.RawMessage) (Event, int, string) {
	var ev Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return ev, http.StatusBadRequest, err.Error()
	}
	ev.Size = len(raw)
	switch {
	case ev.Event == "":
		return ev, http.StatusBadRequest, "missing event"
	case ev.DistinctID == "":
		return ev, http.StatusBadRequest, "missing distinct_id"
	}
	if _, err := uuid.Parse(ev.UUID); err != nil {
		return ev, http.StatusBadRequest, "invalid uuid"
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err != nil {
		return ev, http.StatusBadRequest, "invalid timestamp"
	}
	if strings.HasPrefix(ev.Event, "$ai_") && len(raw) > MaxAIEventBytes {
		return ev, http.StatusRequestEntityTooLarge, "AI event too large"
	}
	s.mu.Lock()
	invalid := s.invalid
	s.mu.Unlock()
	if invalid != nil && invalid(ev) {
		return ev, http.StatusBadRequest, "invalid event"
	}
	return ev, http.StatusOK, ""
}

// Prop decodes property name of e into v, and reports whether it exists.
func (e Event) Prop(name string, v any) bool {
	raw, ok := e.Properties[name]
	if !ok {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}
