package httpconn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// envCAFile is the variable that sets the CA file, named in messages.
const envCAFile = "ENRICHER_POSTHOG_CA_FILE"

// explainingTransport wraps the errors of next with a message that names
// the setting to check, so that the sink's retry log names the fix.
type explainingTransport struct {
	next   http.RoundTripper
	caFile string
}

// RoundTrip implements http.RoundTripper.
func (t *explainingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, t.explain(err)
	}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the wrapped
// transport, as http.Client.CloseIdleConnections expects.
func (t *explainingTransport) CloseIdleConnections() {
	if closer, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		closer.CloseIdleConnections()
	}
}

// explain returns err wrapped with the setting to check when err is a
// certificate or proxy failure, and err unchanged otherwise.
func (t *explainingTransport) explain(err error) error {
	if explanation := t.explanation(err); explanation != "" {
		return fmt.Errorf("%s: %w", explanation, err)
	}
	return err
}

func (t *explainingTransport) explanation(err error) string {
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		if t.caFile == "" {
			return fmt.Sprintf("the PostHog server certificate is not trusted by the system roots: set %s to the CA that signed it",
				envCAFile)
		}
		return fmt.Sprintf("the PostHog server certificate is trusted neither by the system roots nor by the CA in %s (%s): set it to the CA that signed the server certificate",
			envCAFile, t.caFile)
	}
	if hostname, ok := errors.AsType[x509.HostnameError](err); ok {
		return fmt.Sprintf("the PostHog server certificate is not valid for %q: check the host in ENRICHER_POSTHOG_HOST",
			hostname.Host)
	}
	if invalid, ok := errors.AsType[x509.CertificateInvalidError](err); ok && invalid.Reason == x509.Expired {
		return "the PostHog server certificate is expired or not yet valid: renew it on the server, or check this host's clock"
	}
	// net/http names a failed dial to the proxy "proxyconnect".
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "proxyconnect" {
		return "connecting to the proxy failed: check HTTPS_PROXY and NO_PROXY"
	}
	return ""
}
