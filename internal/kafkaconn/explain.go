package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/llm-enricher/enricher/internal/kafkaconn/tlsreload"
)

// Explain returns err wrapped with a message that names the setting to
// check when err is a TLS or SASL connection failure, such as one returned
// by kgo.Client.Ping. It returns any other error unchanged, and nil for nil.
// The message never contains the password.
func (c Config) Explain(err error) error {
	if err == nil {
		return nil
	}
	if explanation := c.explain(err); explanation != "" {
		return fmt.Errorf("%s: %w", explanation, err)
	}
	return err
}

// explain returns the message for err, or "" when err is not a TLS or SASL
// connection failure. The TLS cases come first because a failed handshake
// also ends in a closed connection.
func (c Config) explain(err error) string {
	if explanation := c.explainTLS(err); explanation != "" {
		return explanation
	}
	return c.explainSASL(err)
}

func (c Config) explainTLS(err error) string {
	if validity, ok := errors.AsType[*tlsreload.ValidityError](err); ok {
		if validity.Expired() {
			return fmt.Sprintf("the client certificate in %s expired at %s: renew it",
				envTLSCertFile, validity.NotAfter.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("the client certificate in %s is not valid before %s: check the clock or the certificate",
			envTLSCertFile, validity.NotBefore.UTC().Format(time.RFC3339))
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		if c.TLSCAFile == "" {
			return fmt.Sprintf("the broker certificate is not trusted by the system roots: set %s to the CA that signed it",
				envTLSCAFile)
		}
		return fmt.Sprintf("the broker certificate is not trusted by the CA in %s (%s): set it to the CA that signed the broker certificate",
			envTLSCAFile, c.TLSCAFile)
	}
	if hostname, ok := errors.AsType[x509.HostnameError](err); ok {
		return fmt.Sprintf("the broker certificate is not valid for %q: set %s to a name that the certificate contains",
			hostname.Host, envTLSServerName)
	}
	if invalid, ok := errors.AsType[x509.CertificateInvalidError](err); ok && invalid.Reason == x509.Expired {
		return "the broker certificate is expired or not yet valid: renew it on the broker, or check this host's clock"
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return fmt.Sprintf("the broker does not answer with TLS: use its TLS listener, or unset %s and the TLS files",
			envTLSEnabled)
	}
	if explanation := c.explainAlert(err); explanation != "" {
		return explanation
	}
	return explainHandshakeEnd(err)
}

// explainHandshakeEnd explains a TLS handshake that the broker ended without
// a TLS answer. A Kafka plaintext listener reads the TLS ClientHello as the
// size of a request, finds it too large and closes the connection, and
// other servers may never answer.
func explainHandshakeEnd(err error) string {
	if _, ok := errors.AsType[*handshakeError](err); !ok {
		return ""
	}
	timeout := false
	if netErr, ok := errors.AsType[net.Error](err); ok {
		timeout = netErr.Timeout()
	}
	// A listener that closes the connection with the ClientHello still
	// unread makes the kernel send a reset, so the client sees either EOF
	// or a reset, depending on timing.
	closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	if !closed && !errors.Is(err, context.DeadlineExceeded) && !timeout {
		return ""
	}
	return fmt.Sprintf("the broker closed the connection or did not answer during the TLS handshake: check that %s names the brokers' TLS listener, or unset %s and the TLS files for a plaintext listener",
		envBrokers, envTLSEnabled)
}

// explainAlert explains a TLS alert from the broker. crypto/tls does not
// export the alert type for TCP connections, so this matches the alert
// text as crypto/tls in Go 1.26 writes it.
func (c Config) explainAlert(err error) string {
	text := err.Error()
	switch {
	case strings.Contains(text, "remote error: tls: expired certificate"):
		return fmt.Sprintf("the broker rejected the client certificate as expired: renew %s", envTLSCertFile)
	case strings.Contains(text, "remote error: tls: certificate required"):
		return fmt.Sprintf("the broker requires a client certificate: set %s and %s", envTLSCertFile, envTLSKeyFile)
	case strings.Contains(text, "remote error: tls: unknown certificate authority"),
		strings.Contains(text, "remote error: tls: bad certificate"):
		return fmt.Sprintf("the broker rejected the client certificate in %s: use one signed by a CA that the broker trusts",
			envTLSCertFile)
	}
	return ""
}

func (c Config) explainSASL(err error) string {
	mechanism := c.mechanism()
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return c.authFailed(mechanism)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Sprintf("the broker does not support SASL mechanism %s: change %s", mechanism, envSASLMechanism)
	case errors.Is(err, kerr.IllegalSaslState):
		return fmt.Sprintf("the broker rejected the SASL exchange: check that its listener expects %s=%s",
			envSASLMechanism, mechanism)
	case errors.Is(err, io.EOF) && mechanism != "":
		// Some brokers (kfake among them) close the connection instead
		// of returning SASL_AUTHENTICATION_FAILED.
		return "the broker closed the connection, which with SASL usually means " + c.authFailed(mechanism)
	case errors.Is(err, io.EOF) && !c.usesTLS():
		return fmt.Sprintf("the broker closed the connection: if its listener requires TLS set %s=true, and if it requires SASL set %s",
			envTLSEnabled, envSASLMechanism)
	case errors.Is(err, io.EOF):
		return fmt.Sprintf("the broker closed the connection: if its listener requires SASL set %s", envSASLMechanism)
	}
	return ""
}

// authFailed names the user and mechanism of a rejected authentication and
// the variables to check, but never the secret.
func (c Config) authFailed(mechanism string) string {
	switch mechanism {
	case MechanismOAuthBearer:
		return fmt.Sprintf("SASL authentication failed with mechanism %s: check the token in %s",
			mechanism, envSASLTokenFile)
	case MechanismAWSMSKIAM:
		return fmt.Sprintf("SASL authentication failed with mechanism %s: check the AWS credentials and their IAM policy for the cluster",
			mechanism)
	}
	return fmt.Sprintf("SASL authentication failed for user %q with mechanism %s: check %s and %s",
		c.SASLUsername, mechanism, envSASLUsername, envSASLPassword)
}
