package kafkaconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	saslaws "github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/llm-enricher/enricher/internal/kafkaconn/tlsreload"
)

// Opts validates the settings and returns the franz-go options that apply
// them: a dialer (with TLS when it is on) and the SASL mechanism. Append them
// to the options of every client that talks to these brokers. The returned
// options share one set of reloaded TLS files.
//
// Opts reads the TLS files once, so a file that does not parse fails here
// rather than on the first dial. An expired client certificate does not fail
// here: cert-manager may renew it in place, so it fails each TLS handshake
// with a *tlsreload.ValidityError until the files are replaced.
func (c Config) Opts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}

	timeout := c.DialTimeout
	if timeout == 0 {
		timeout = defaultDialTimeout
	}
	dialer := &net.Dialer{Timeout: timeout}
	opts := []kgo.Opt{kgo.Dialer(dialer.DialContext)}

	if c.usesTLS() {
		td, err := c.newTLSDialer(dialer)
		if err != nil {
			return nil, err
		}
		opts[0] = kgo.Dialer(td.DialContext)
	}

	mechanism, err := c.saslMechanism()
	if err != nil {
		return nil, err
	}
	if mechanism != nil {
		opts = append(opts, kgo.SASL(mechanism))
	}
	return opts, nil
}

// tlsDialer dials a broker and completes the TLS handshake with the newest
// CA pool and client certificate, so that each new connection uses rotated
// files.
type tlsDialer struct {
	net        *net.Dialer
	timeout    time.Duration
	serverName string
	roots      *tlsreload.Roots   // nil means the system roots
	keyPair    *tlsreload.KeyPair // nil means no client certificate
}

func (c Config) newTLSDialer(dialer *net.Dialer) (*tlsDialer, error) {
	d := &tlsDialer{net: dialer, timeout: dialer.Timeout, serverName: c.TLSServerName}
	var err error
	if c.TLSCAFile != "" {
		// Kafka deployments with a private CA expect only that CA, as a
		// Java truststore holding it would, so the system roots stay out.
		d.roots, err = tlsreload.NewRoots(c.TLSCAFile, false, c.TLSReloadInterval)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", envTLSCAFile, err)
		}
	}
	if c.TLSCertFile != "" {
		d.keyPair, err = tlsreload.NewKeyPair(c.TLSCertFile, c.TLSKeyFile, c.TLSReloadInterval)
		if err != nil {
			return nil, fmt.Errorf("loading %s and %s: %w", envTLSCertFile, envTLSKeyFile, err)
		}
	}
	return d, nil
}

// DialContext has the signature that kgo.Dialer expects.
func (d *tlsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	// The dialer's own timeout covers only the TCP connect.
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()

	raw, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}

	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: d.serverName}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	if d.roots != nil {
		cfg.RootCAs, _ = d.roots.Pool()
	}
	if d.keyPair != nil {
		cfg.GetClientCertificate = d.keyPair.GetClientCertificate
	}

	// The handshake runs here, rather than on the first write, so that a
	// certificate problem comes back as a dial error that names the broker.
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &handshakeError{broker: addr, err: err}
	}
	return conn, nil
}

// handshakeError is a failed TLS handshake with a broker. Explain tells it
// apart from a connection that closes later, during SASL.
type handshakeError struct {
	broker string
	err    error
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("performing TLS handshake with broker %s: %v", e.broker, e.err)
}

func (e *handshakeError) Unwrap() error { return e.err }

// saslMechanism returns the configured mechanism, or nil without SASL.
func (c Config) saslMechanism() (sasl.Mechanism, error) {
	user, pass := c.SASLUsername, c.SASLPassword.Reveal()
	switch c.mechanism() {
	case MechanismPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case MechanismScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	case MechanismOAuthBearer:
		return oauth.Oauth(c.readOAuthToken), nil
	case MechanismAWSMSKIAM:
		return c.awsMechanism()
	default:
		return nil, nil
	}
}

// readOAuthToken reads the token file on every authentication, so that a
// token rotated by a sidecar is used before the old one expires.
func (c Config) readOAuthToken(context.Context) (oauth.Auth, error) {
	content, err := os.ReadFile(c.SASLOAuthTokenFile)
	if err != nil {
		return oauth.Auth{}, fmt.Errorf("reading %s: %w", envSASLTokenFile, err)
	}
	token := strings.TrimSpace(string(content))
	if token == "" {
		return oauth.Auth{}, fmt.Errorf("reading %s: file %s is empty", envSASLTokenFile, c.SASLOAuthTokenFile)
	}
	return oauth.Auth{Token: token}, nil
}

// awsMechanism signs AWS_MSK_IAM authentications with credentials from the
// standard AWS chain: environment, shared files, web identity (EKS IRSA),
// container and instance roles. The chain resolves and caches credentials
// on the first authentication, not here.
func (c Config) awsMechanism() (sasl.Mechanism, error) {
	var loadOpts []func(*awsconfig.LoadOptions) error
	if c.SASLAWSRegion != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(c.SASLAWSRegion))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration for %s=%s: %w",
			envSASLMechanism, MechanismAWSMSKIAM, err)
	}
	if awsCfg.Credentials == nil {
		return nil, errors.New("loading the AWS configuration: no credential provider found")
	}

	credentials := awsCfg.Credentials
	return saslaws.ManagedStreamingIAM(func(ctx context.Context) (saslaws.Auth, error) {
		creds, err := credentials.Retrieve(ctx)
		if err != nil {
			return saslaws.Auth{}, fmt.Errorf("retrieving AWS credentials for %s: %w", MechanismAWSMSKIAM, err)
		}
		return saslaws.Auth{
			AccessKey:    creds.AccessKeyID,
			SecretKey:    creds.SecretAccessKey,
			SessionToken: creds.SessionToken,
		}, nil
	}), nil
}
