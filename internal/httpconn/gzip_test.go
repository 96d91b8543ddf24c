package httpconn

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// received is what the test server saw of one request.
type received struct {
	encoding, query string
	body            []byte
}

func gzipServer(t *testing.T) (*httptest.Server, chan received) {
	t.Helper()
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		got <- received{encoding: r.Header.Get("Content-Encoding"), query: r.URL.RawQuery, body: body}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestGzipCompressesPostBody(t *testing.T) {
	srv, got := gzipServer(t)
	client := &http.Client{Transport: Gzip(http.DefaultTransport)}
	payload := `{"api_key":"k","batch":[` + strings.Repeat(`{"event":"e"},`, 200) + `{"event":"e"}]}`
	resp, err := client.Post(srv.URL+"/batch/", "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	r := <-got
	if r.encoding != "gzip" {
		t.Errorf("Content-Encoding = %q, want gzip", r.encoding)
	}
	if r.query != "compression=gzip" {
		t.Errorf("query = %q, want compression=gzip", r.query)
	}
	if !bytes.HasPrefix(r.body, []byte{0x1f, 0x8b}) {
		t.Fatalf("body does not start with the gzip magic bytes: %q", r.body[:min(4, len(r.body))])
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != payload {
		t.Errorf("decompressed body differs from the payload: got %d bytes, want %d", len(plain), len(payload))
	}
	if len(r.body) >= len(payload) {
		t.Errorf("compressed body of %d bytes is not smaller than %d", len(r.body), len(payload))
	}
}

func TestGzipLeavesEncodedAndBodilessRequests(t *testing.T) {
	srv, got := gzipServer(t)
	client := &http.Client{Transport: Gzip(http.DefaultTransport)}

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/batch/", strings.NewReader("already"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "br")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := <-got; r.encoding != "br" || string(r.body) != "already" {
		t.Errorf("encoded request arrived as %q with body %q, want br and the body unchanged", r.encoding, r.body)
	}

	resp, err = client.Get(srv.URL + "/decide/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := <-got; r.encoding != "" || r.query != "" {
		t.Errorf("GET arrived with Content-Encoding %q and query %q, want neither", r.encoding, r.query)
	}
}
