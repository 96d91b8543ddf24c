package httpconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/llm-enricher/enricher/internal/kafkaconn/certtest"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

// testHost is the name that the test servers' certificates carry. It is not
// a loopback name, which the proxy rules would always send direct.
const testHost = "posthog.test"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer starts an HTTPS server on 127.0.0.1 with a certificate for
// testHost signed by ca. It returns the server's address.
func startServer(t *testing.T, ca *certtest.CA) string {
	t.Helper()
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	server.TLS = &tls.Config{Certificates: []tls.Certificate{ca.IssueServer(t, testHost).TLSCertificate(t)}}
	server.StartTLS()
	t.Cleanup(server.Close)
	return server.Listener.Addr().String()
}

// clearProxyEnv unsets every proxy variable for the test.
func clearProxyEnv(t *testing.T) {
	for _, name := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"} {
		t.Setenv(name, "")
	}
}

// get sends a GET through rt and returns the body.
func get(t *testing.T, rt http.RoundTripper, url string) (string, error) {
	t.Helper()
	client := &http.Client{Transport: rt}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// writeCA writes the CA certificate to a file and returns its path.
func writeCA(t *testing.T, ca *certtest.CA) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	certtest.WriteFile(t, path, ca.PEM)
	return path
}

// dialTo returns a dialer that sends every connection to addr, in place of
// resolving testHost through DNS.
func dialTo(addr string) dialFunc {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, addr)
	}
}

func TestTransportThroughConnectProxy(t *testing.T) {
	clearProxyEnv(t)
	ca := certtest.NewCA(t, "private CA")
	proxy := testsupport.StartProxy(t, startServer(t, ca))
	t.Setenv("HTTPS_PROXY", proxy.URL)

	rt, err := Transport(writeCA(t, ca))
	if err != nil {
		t.Fatalf("Transport: %v", err)
	}
	body, err := get(t, rt, "https://"+testHost+":8443/batch/")
	if err != nil {
		t.Fatalf("GET through the proxy: %v", err)
	}
	if body != "ok" {
		t.Errorf("body = %q, want %q", body, "ok")
	}
	seen := proxy.Targets()
	if len(seen) != 1 || seen[0] != testHost+":8443" {
		t.Errorf("proxy saw CONNECT %v, want [%s:8443]", seen, testHost)
	}
}

func TestTransportNoProxyBypass(t *testing.T) {
	clearProxyEnv(t)
	ca := certtest.NewCA(t, "private CA")
	addr := startServer(t, ca)
	proxy := testsupport.StartProxy(t, addr)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "."+strings.SplitN(testHost, ".", 2)[1])

	rt, err := newTransport(writeCA(t, ca), 0, dialTo(addr))
	if err != nil {
		t.Fatalf("newTransport: %v", err)
	}
	body, err := get(t, rt, "https://"+testHost+"/batch/")
	if err != nil {
		t.Fatalf("GET direct: %v", err)
	}
	if body != "ok" {
		t.Errorf("body = %q, want %q", body, "ok")
	}
	if seen := proxy.Targets(); len(seen) != 0 {
		t.Errorf("proxy saw CONNECT %v for a host in NO_PROXY", seen)
	}
}

func TestTransportRejectsUnknownCA(t *testing.T) {
	clearProxyEnv(t)
	addr := startServer(t, certtest.NewCA(t, "server CA"))

	rt, err := newTransport(writeCA(t, certtest.NewCA(t, "other CA")), 0, dialTo(addr))
	if err != nil {
		t.Fatalf("newTransport: %v", err)
	}
	_, err = get(t, rt, "https://"+testHost+"/")
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Errorf("GET error = %v, want a certificate verification error", err)
	}
	if err == nil || !strings.Contains(err.Error(), "nor by the CA in ENRICHER_POSTHOG_CA_FILE") {
		t.Errorf("GET error = %v, want it to name ENRICHER_POSTHOG_CA_FILE", err)
	}
}

func TestTransportNamesCAFileWithoutOne(t *testing.T) {
	clearProxyEnv(t)
	addr := startServer(t, certtest.NewCA(t, "server CA"))

	rt, err := newTransport("", 0, dialTo(addr))
	if err != nil {
		t.Fatalf("newTransport: %v", err)
	}
	_, err = get(t, rt, "https://"+testHost+"/")
	if err == nil {
		t.Fatal("GET succeeded against a server signed by a private CA")
	}
	want := "not trusted by the system roots: set ENRICHER_POSTHOG_CA_FILE"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("GET error = %v, want it to contain %q", err, want)
	}
}

func TestTransportNamesProxyOnFailure(t *testing.T) {
	clearProxyEnv(t)
	// A listener closed at once leaves a port that refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	t.Setenv("HTTPS_PROXY", "http://"+ln.Addr().String())

	rt, err := Transport("")
	if err != nil {
		t.Fatalf("Transport: %v", err)
	}
	_, err = get(t, rt, "https://"+testHost+"/")
	if err == nil {
		t.Fatal("GET succeeded through a proxy that refuses connections")
	}
	if want := "check HTTPS_PROXY"; !strings.Contains(err.Error(), want) {
		t.Errorf("GET error = %v, want it to contain %q", err, want)
	}
}

func TestTransportReloadsCAFile(t *testing.T) {
	clearProxyEnv(t)
	oldCA, newCA := certtest.NewCA(t, "old CA"), certtest.NewCA(t, "new CA")
	addr := startServer(t, newCA)
	caFile := writeCA(t, oldCA)

	rt, err := newTransport(caFile, 0, dialTo(addr))
	if err != nil {
		t.Fatalf("newTransport: %v", err)
	}
	if _, err := get(t, rt, "https://"+testHost+"/"); err == nil {
		t.Fatal("GET succeeded before the CA file named the server's CA")
	}

	certtest.WriteFile(t, caFile, newCA.PEM)
	if _, err := get(t, rt, "https://"+testHost+"/"); err != nil {
		t.Fatalf("GET after replacing the CA file: %v", err)
	}
}

func TestTransportWithoutCAFile(t *testing.T) {
	clearProxyEnv(t)
	rt, err := Transport("")
	if err != nil {
		t.Fatalf("Transport: %v", err)
	}
	explaining, ok := rt.(*explainingTransport)
	if !ok {
		t.Fatalf("Transport returned %T, want *explainingTransport", rt)
	}
	transport, ok := explaining.next.(*http.Transport)
	if !ok {
		t.Fatalf("Transport wraps %T, want *http.Transport", explaining.next)
	}
	if transport.Proxy == nil {
		t.Error("transport has no proxy function")
	}
}

func TestTransportRejectsBadCAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.pem")
	certtest.WriteFile(t, path, []byte("not a certificate"))
	if _, err := Transport(path); err == nil {
		t.Error("Transport accepted a CA file without a PEM certificate")
	}
	if _, err := Transport(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("Transport accepted a missing CA file")
	}
}
