package testsupport

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// Proxy tunnels every CONNECT request to one upstream address, whatever
// host the request names, and records the names.
type Proxy struct {
	// URL is the proxy's address, for HTTPS_PROXY.
	URL string

	upstream string
	server   *httptest.Server

	mu      sync.Mutex
	targets []string
	tunnels sync.WaitGroup
}

// StartProxy starts an HTTP CONNECT proxy on 127.0.0.1 that tunnels to
// upstream, a host:port, and stops it when the test ends.
func StartProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	p := &Proxy{upstream: upstream}
	p.server = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.server.URL
	t.Cleanup(func() {
		p.server.Close()
		p.tunnels.Wait()
	})
	return p
}

// Targets returns the hosts that CONNECT requests named, in order.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.targets)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "only CONNECT is supported", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, r.Host)
	p.mu.Unlock()

	upstream, err := net.Dial("tcp", p.upstream)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	client, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")

	// Each direction closes both connections when it ends, so that the
	// other direction ends too.
	p.tunnels.Add(2)
	pipe := func(dst, src net.Conn) {
		defer p.tunnels.Done()
		io.Copy(dst, src)
		dst.Close()
		src.Close()
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
}
