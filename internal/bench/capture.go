package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of PostHog's capture service for POST /batch/.
const (
	maxBodyBytes         = 20 << 20
	maxDecompressedBytes = 100 << 20
)

// CaptureConfig bounds a capture server.
type CaptureConfig struct {
	// APIKey is the one key the server accepts.
	APIKey string
	// MaxEvents bounds the events accepted over the server's life, Reset
	// or not. Past it every request gets 503.
	MaxEvents int64
	// Lifetime bounds how long the server runs; it closes itself then.
	Lifetime time.Duration
}

// Capture is a lean HTTP server for PostHog's POST /batch/ contract: 404 for
// any other path, 413 past 20 MiB on the wire or 100 MiB after gunzip, gzip
// detected by its magic bytes, 401 without an API key and 403 with a wrong
// one, 400 for an empty batch, and 200 {"status":"Ok"}.
//
// It counts the events of a batch by their "uuid" keys instead of decoding
// the batch, so that it takes little of the CPU that the measured process
// needs. Events without a uuid, which PostHog would accept, are not
// counted, but posthog-go gives every event one.
type Capture struct {
	URL string

	cfg      CaptureConfig
	srv      *http.Server
	keyField []byte
	events   atomic.Int64
	total    atomic.Int64
	delay    atomic.Int64 // nanoseconds before each response

	mu        sync.Mutex
	latencies []latency
}

type latency struct {
	sentUs int64
	took   time.Duration
}

var (
	uuidKey    = []byte(`"uuid":"`)
	apiKeyKey  = []byte(`"api_key":"`)
	emptyBatch = []byte(`"batch":[]`)
)

// StartCapture starts a capture server on 127.0.0.1.
func StartCapture(cfg CaptureConfig) (*Capture, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the capture server: %w", err)
	}
	c := &Capture{
		URL:      "http://" + ln.Addr().String(),
		cfg:      cfg,
		keyField: []byte(`"api_key":"` + cfg.APIKey + `"`),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", c.serve)
	mux.HandleFunc("GET /bench/count", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, strconv.FormatInt(c.events.Load(), 10))
	})
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go c.srv.Serve(ln)
	time.AfterFunc(cfg.Lifetime, func() { c.srv.Close() })
	return c, nil
}

// Close stops the server.
func (c *Capture) Close() error { return c.srv.Close() }

// Events returns how many events were accepted since the last Reset.
func (c *Capture) Events() int64 { return c.events.Load() }

// SetDelay makes the server wait d before each response to /batch/.
func (c *Capture) SetDelay(d time.Duration) { c.delay.Store(int64(d)) }

// Reset sets the event count to zero and drops the latencies.
func (c *Capture) Reset() {
	c.events.Store(0)
	c.mu.Lock()
	c.latencies = nil
	c.mu.Unlock()
}

// Latencies returns the delivery latency of each accepted event that
// carried a produce time of at least fromUs, in Unix microseconds.
func (c *Capture) Latencies(fromUs int64) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.latencies))
	for _, l := range c.latencies {
		if l.sentUs >= fromUs {
			out = append(out, l.took)
		}
	}
	slices.Sort(out)
	return out
}

func (c *Capture) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/batch/" {
		reply(w, http.StatusNotFound, "not_found")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		reply(w, http.StatusBadRequest, "invalid_body")
		return
	}
	arrived := time.Now()
	if d := time.Duration(c.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	status, code := c.capture(body, arrived)
	reply(w, status, code)
}

// capture applies the contract to one request body.
func (c *Capture) capture(body []byte, arrived time.Time) (int, string) {
	if len(body) > maxBodyBytes {
		return http.StatusRequestEntityTooLarge, "payload_too_large"
	}
	if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		var err error
		if body, err = gunzip(body); err != nil {
			return http.StatusBadRequest, "invalid_gzip"
		}
		if len(body) > maxDecompressedBytes {
			return http.StatusRequestEntityTooLarge, "payload_too_large"
		}
	}
	switch {
	case !bytes.Contains(body, apiKeyKey):
		return http.StatusUnauthorized, "missing_api_key"
	case !bytes.Contains(body, c.keyField):
		return http.StatusForbidden, "ingest_key_unknown"
	case bytes.Contains(body, emptyBatch):
		return http.StatusBadRequest, "empty_batch"
	}
	n := int64(bytes.Count(body, uuidKey))
	if c.total.Add(n) > c.cfg.MaxEvents {
		c.total.Add(-n)
		return http.StatusServiceUnavailable, "bench_limit"
	}
	c.recordLatencies(body, arrived)
	c.events.Add(n)
	return http.StatusOK, ""
}

// recordLatencies stores the delivery latency of each event in body that
// carries a produce time.
func (c *Capture) recordLatencies(body []byte, arrived time.Time) {
	if !bytes.Contains(body, sentMarker) {
		return
	}
	now := arrived.UnixMicro()
	var found []latency
	for rest := body; ; {
		i := bytes.Index(rest, sentMarker)
		if i < 0 {
			break
		}
		rest = rest[i+len(sentMarker):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			break
		}
		sent, err := strconv.ParseInt(string(rest[:end]), 10, 64)
		if err == nil && sent > 0 {
			found = append(found, latency{sentUs: sent, took: time.Duration(now-sent) * time.Microsecond})
		}
	}
	c.mu.Lock()
	c.latencies = append(c.latencies, found...)
	c.mu.Unlock()
}

func gunzip(body []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, maxDecompressedBytes+1))
}

func reply(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusOK {
		io.WriteString(w, `{"status":"Ok"}`)
		return
	}
	fmt.Fprintf(w, `{"status":%d,"code":%q,"error":%q}`, status, code, http.StatusText(status))
}

// LookupServer serves the bench's lookups: GET /orgs/{key} at once and
// GET /users/{key} after UserLatency.
type LookupServer struct {
	URL string
	srv *http.Server
}

// StartLookups starts a lookup server on 127.0.0.1 that closes itself
// after lifetime.
func StartLookups(userLatency, lifetime time.Duration) (*LookupServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the lookup server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orgs/{key}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"plan":"enterprise","region":"eu","name":%q}`, r.PathValue("key"))
	})
	mux.HandleFunc("GET /users/{key}", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(userLatency):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `{"tier":"pro","seats":12}`)
	})
	l := &LookupServer{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go l.srv.Serve(ln)
	time.AfterFunc(lifetime, func() { l.srv.Close() })
	return l, nil
}

// Close stops the server.
func (l *LookupServer) Close() error { return l.srv.Shutdown(context.Background()) }
