// Package httpconn builds the HTTP transport for PostHog: it honours the
// standard proxy variables and trusts a private CA, reloading the CA file when
// it changes.
package httpconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/llm-enricher/enricher/internal/kafkaconn/tlsreload"
)

// dialFunc has the signature of net.Dialer.DialContext.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Transport returns a round tripper built on a clone of
// http.DefaultTransport that reaches servers through the proxy named by HTTPS_PROXY and HTTP_PROXY
// (or their lower-case forms) unless NO_PROXY excludes the host. The
// variables are read when Transport is called, not on every request.
//
// When caFile is set, server certificates are verified against the system
// roots plus the CA certificates in caFile. The file is re-read at most every
// few seconds, and a changed file applies to new connections. Transport
// returns an error when caFile cannot be read or contains no PEM certificate.
//
// A request that fails on the server certificate or on the proxy returns an
// error that names the setting to check: ENRICHER_POSTHOG_CA_FILE,
// ENRICHER_POSTHOG_HOST or HTTPS_PROXY.
func Transport(caFile string) (http.RoundTripper, error) {
	return newTransport(caFile, tlsreload.DefaultInterval, nil)
}

// newTransport is Transport with the reload interval and, when dial is not
// nil, the dialer for direct connections and for the proxy.
func newTransport(caFile string, interval time.Duration, dial dialFunc) (http.RoundTripper, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	// posthog-go sends each batch on a goroutine of its own. With the
	// default of 2 idle connections per host, most batches opened a new
	// connection; 10 is posthog-go's own default.
	base.MaxIdleConnsPerHost = 10

	// http.ProxyFromEnvironment reads the variables once per process,
	// while httpproxy reads them now. httpproxy also sends loopback and
	// localhost destinations direct, as http.ProxyFromEnvironment does.
	proxy := httpproxy.FromEnvironment().ProxyFunc()
	base.Proxy = func(req *http.Request) (*url.URL, error) { return proxy(req.URL) }
	if dial != nil {
		base.DialContext = dial
	}
	if base.TLSClientConfig == nil {
		base.TLSClientConfig = &tls.Config{}
	}
	base.TLSClientConfig.MinVersion = tls.VersionTLS12

	if caFile == "" {
		return &explainingTransport{next: base}, nil
	}
	roots, err := tlsreload.NewRoots(caFile, true, interval)
	if err != nil {
		return nil, fmt.Errorf("loading the PostHog CA file: %w", err)
	}
	t := &reloadingTransport{roots: roots, base: base}
	t.transport()
	return &explainingTransport{next: t, caFile: caFile}, nil
}

// reloadingTransport sends each request through an *http.Transport that
// trusts the current CA pool, and replaces that transport when the CA file
// changes. Changing the tls.Config of a transport in use would race with its
// dials, so each pool gets its own transport.
type reloadingTransport struct {
	roots *tlsreload.Roots
	base  *http.Transport

	mu         sync.Mutex
	current    *http.Transport
	generation uint64
}

// RoundTrip implements http.RoundTripper.
func (t *reloadingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.transport().RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of the current
// transport, as http.Client.CloseIdleConnections expects.
func (t *reloadingTransport) CloseIdleConnections() {
	t.mu.Lock()
	current := t.current
	t.mu.Unlock()
	current.CloseIdleConnections()
}

// transport returns the transport for the current CA pool, building a new
// one when the pool changed. Requests still running on the old transport
// finish there, and its idle connections close.
func (t *reloadingTransport) transport() *http.Transport {
	pool, generation := t.roots.Pool()

	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil && generation == t.generation {
		return t.current
	}

	next := t.base.Clone()
	next.TLSClientConfig.RootCAs = pool
	if t.current != nil {
		t.current.CloseIdleConnections()
	}
	t.current, t.generation = next, generation
	return next
}
