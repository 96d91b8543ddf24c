package lookup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	keyPlaceholder = "{key}"

	// maxResponseBytes bounds the body read from a lookup response.
	maxResponseBytes = 1 << 20
)

// httpSource sends one GET request per lookup key.
type httpSource struct {
	template string // the URL template, for error messages without a key
	parts    []urlPart
	headers  http.Header
	timeout  time.Duration
	client   *http.Client
}

// urlPart is a literal piece of a URL template, followed by the key when
// key is set.
type urlPart struct {
	literal string
	key     bool
	query   bool // the key sits in the query, so it is query-escaped
}

func newHTTPSource(spec HTTPSpec) (*httpSource, error) {
	if err := checkURLTemplate(spec.URL); err != nil {
		return nil, err
	}
	headers := make(http.Header, len(spec.Headers)+1)
	headers.Set("Accept", "application/json")
	for name, ref := range spec.Headers {
		value, err := resolveHeader(name, ref)
		if err != nil {
			return nil, fmt.Errorf("reading header %s: %w", name, err)
		}
		headers.Set(name, value)
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Many events wait on the same upstream at once. With fewer idle
	// connections than open ones, every burst of misses would open
	// connections and close them again, a TCP handshake per request and a
	// socket left in TIME_WAIT after it.
	transport.MaxConnsPerHost = max(spec.MaxConnections, 1)
	transport.MaxIdleConnsPerHost = transport.MaxConnsPerHost
	transport.MaxIdleConns = transport.MaxConnsPerHost

	return &httpSource{
		template: spec.URL,
		parts:    splitTemplate(spec.URL),
		headers:  headers,
		timeout:  time.Duration(spec.Timeout),
		client:   &http.Client{Transport: transport},
	}, nil
}

func splitTemplate(tpl string) []urlPart {
	var parts []urlPart
	query := false
	for {
		i := strings.Index(tpl, keyPlaceholder)
		if i < 0 {
			return append(parts, urlPart{literal: tpl})
		}
		literal := tpl[:i]
		query = query || strings.Contains(literal, "?")
		parts = append(parts, urlPart{literal: literal, key: true, query: query})
		tpl = tpl[i+len(keyPlaceholder):]
	}
}

func (s *httpSource) url(key string) string {
	var b strings.Builder
	for _, p := range s.parts {
		b.WriteString(p.literal)
		switch {
		case !p.key:
		case p.query:
			b.WriteString(url.QueryEscape(key))
		default:
			b.WriteString(url.PathEscape(key))
		}
	}
	return b.String()
}

// fetch returns the decoded JSON body of a 200 response, found false for a 404
// or a JSON null body, and an error for anything else. Its errors name the
// URL template, not the key, and never a header.
func (s *httpSource) fetch(ctx context.Context, key string) (any, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(key), nil)
	if err != nil {
		return nil, false, fmt.Errorf("building request for %s: %w", s.template, err)
	}
	// Requests share one header map: the client and its transport only
	// read it, and adding authentication from the URL copies it first.
	req.Header = s.headers

	resp, err := s.client.Do(req)
	if err != nil {
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err
		}
		return nil, false, fmt.Errorf("requesting %s: %w", s.template, err)
	}
	defer resp.Body.Close()

	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		drain(resp.Body)
		return nil, false, nil
	default:
		drain(resp.Body)
		return nil, false, fmt.Errorf("requesting %s: unexpected status %s", s.template, resp.Status)
	}

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("reading response of %s: %w", s.template, err)
	}
	if len(body) > maxResponseBytes {
		return nil, false, fmt.Errorf("reading response of %s: body exceeds %d bytes", s.template, maxResponseBytes)
	}
	value, err := decodeJSON(body)
	if err != nil {
		return nil, false, fmt.Errorf("decoding response of %s: %w", s.template, err)
	}
	return value, value != nil, nil
}

// drain reads a little of an unused body so that the connection can be
// reused.
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
}

// decodeJSON decodes one JSON value, keeping numbers as json.Number so that
// large integers survive.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}
