package metrics

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Transport wraps next, the transport of PostHog requests, to count
// responses by status code, time each request and count the events of
// each batch. responded, when set, is called for every request that got a
// response, whatever its status.
func (m *Metrics) Transport(next http.RoundTripper, responded func()) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{m: m, next: next, responded: responded}
}

type transport struct {
	m         *Metrics
	next      http.RoundTripper
	responded func()
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if n, ok := countEvents(req); ok {
		t.m.batchSize.Observe(float64(n))
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	t.m.requestTime.Observe(time.Since(start).Seconds())
	if err != nil {
		t.m.responses.WithLabelValues("error").Inc()
		return nil, err
	}
	t.m.responses.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	if t.responded != nil {
		t.responded()
	}
	return resp, nil
}

var gzipReaders sync.Pool

// countEvents counts the events of a batch request without disturbing
// its body, which it reads again through GetBody.
func countEvents(req *http.Request) (int, bool) {
	if req.GetBody == nil || req.Method != http.MethodPost {
		return 0, false
	}
	body, err := req.GetBody()
	if err != nil {
		return 0, false
	}
	defer body.Close()
	var r io.Reader = body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		if zr == nil {
			zr, err = gzip.NewReader(body)
		} else {
			err = zr.Reset(body)
		}
		if err != nil {
			return 0, false
		}
		defer gzipReaders.Put(zr)
		r = zr
	}
	return countBatch(r)
}
