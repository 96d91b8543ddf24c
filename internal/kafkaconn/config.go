// Package kafkaconn turns the connection settings for Kafka brokers (TLS,
// mutual TLS and SASL) into franz-go client options, explains connection
// errors in terms of those settings, and keeps franz-go's warnings about a
// rejected connection from repeating in the log.
package kafkaconn

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// envPrefix is the prefix under which the service configuration embeds Config. It appears
// only in messages, so that each one names the variable to change.
const envPrefix = "ENRICHER_KAFKA_"

// Names of the variables, as they appear in messages.
const (
	envBrokers         = envPrefix + "BROKERS"
	envTLSEnabled      = envPrefix + "TLS_ENABLED"
	envTLSCAFile       = envPrefix + "TLS_CA_FILE"
	envTLSCertFile     = envPrefix + "TLS_CERT_FILE"
	envTLSKeyFile      = envPrefix + "TLS_KEY_FILE"
	envTLSServerName   = envPrefix + "TLS_SERVER_NAME"
	envTLSReload       = envPrefix + "TLS_RELOAD_INTERVAL"
	envDialTimeout     = envPrefix + "DIAL_TIMEOUT"
	envSASLMechanism   = envPrefix + "SASL_MECHANISM"
	envSASLUsername    = envPrefix + "SASL_USERNAME"
	envSASLPassword    = envPrefix + "SASL_PASSWORD"
	envSASLTokenFile   = envPrefix + "SASL_OAUTH_TOKEN_FILE"
	envSASLAWSRegion   = envPrefix + "SASL_AWS_REGION"
	defaultDialTimeout = 10 * time.Second
)

// SASL mechanisms accepted in Config.SASLMechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
	MechanismOAuthBearer = "OAUTHBEARER"
	MechanismAWSMSKIAM   = "AWS_MSK_IAM"
)

var mechanisms = []string{
	MechanismPlain,
	MechanismScramSHA256,
	MechanismScramSHA512,
	MechanismOAuthBearer,
	MechanismAWSMSKIAM,
}

// Config contains the settings for connecting to Kafka brokers. Its env tags
// carry no prefix: the caller embeds it with envPrefix:"ENRICHER_KAFKA_".
// The zero value connects in plaintext without SASL.
type Config struct {
	// TLSEnabled turns on TLS to the brokers, verified against the system
	// roots unless TLSCAFile is set. Default false. Setting TLSCAFile,
	// TLSCertFile or TLSKeyFile turns TLS on as well.
	TLSEnabled bool `env:"TLS_ENABLED"`

	// TLSCAFile is a PEM file of the CA certificates that sign the broker
	// certificates. They replace the system roots for Kafka. Empty means
	// the system roots. The file is re-read when its content changes.
	TLSCAFile string `env:"TLS_CA_FILE"`

	// TLSCertFile is a PEM file with the client certificate chain for
	// mutual TLS, and TLSKeyFile its PEM private key. Set both or neither.
	// Empty means no client certificate. Both are re-read when they change.
	TLSCertFile string `env:"TLS_CERT_FILE"`

	// TLSKeyFile is the PEM private key of TLSCertFile.
	TLSKeyFile string `env:"TLS_KEY_FILE"`

	// TLSServerName is the name that every broker certificate is verified
	// against, and the name sent in SNI. Empty means the host of each
	// broker address.
	TLSServerName string `env:"TLS_SERVER_NAME"`

	// TLSReloadInterval is the minimum time between two reads of the TLS
	// files. Default 5s. Zero re-reads them on every new connection.
	TLSReloadInterval time.Duration `env:"TLS_RELOAD_INTERVAL" envDefault:"5s"`

	// DialTimeout bounds the TCP connect and TLS handshake to one broker.
	// Default 10s. Zero means 10s.
	DialTimeout time.Duration `env:"DIAL_TIMEOUT" envDefault:"10s"`

	// SASLMechanism is one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
	// OAUTHBEARER and AWS_MSK_IAM, in any letter case. Empty means no SASL.
	SASLMechanism string `env:"SASL_MECHANISM"`

	// SASLUsername is the user for PLAIN and SCRAM. Empty is invalid
	// with those mechanisms, and must stay empty with the others.
	SASLUsername string `env:"SASL_USERNAME"`

	// SASLPassword is the password for PLAIN and SCRAM. It prints as
	// [REDACTED].
	SASLPassword Secret `env:"SASL_PASSWORD"`

	// SASLOAuthTokenFile is a file with the OAUTHBEARER token, read on every
	// authentication so that a rotated token is used from the next
	// connection on. Required with OAUTHBEARER.
	SASLOAuthTokenFile string `env:"SASL_OAUTH_TOKEN_FILE"`

	// SASLAWSRegion is the AWS region that the credential chain uses for
	// AWS_MSK_IAM (for STS, say). Empty means the AWS_REGION variable or
	// the shared config file. The region in the request signature comes
	// from the broker host name.
	SASLAWSRegion string `env:"SASL_AWS_REGION"`
}

// Secret is a string that prints as [REDACTED] in fmt, JSON and slog
// output, so that a logged config shows only whether it is set.
type Secret string

const redacted = "[REDACTED]"

// String returns [REDACTED], or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the redacted form quoted, for the %#v verb.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// MarshalJSON returns the redacted form as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%q", s.String()), nil
}

// MarshalText returns the redacted form, for encoders that use text.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue returns the redacted form for slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the secret itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// LogValue returns the settings as a slog group with the password redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("tls_enabled", c.usesTLS()),
		slog.String("tls_ca_file", c.TLSCAFile),
		slog.String("tls_cert_file", c.TLSCertFile),
		slog.String("tls_key_file", c.TLSKeyFile),
		slog.String("tls_server_name", c.TLSServerName),
		slog.Duration("tls_reload_interval", c.TLSReloadInterval),
		slog.Duration("dial_timeout", c.DialTimeout),
		slog.String("sasl_mechanism", c.SASLMechanism),
		slog.String("sasl_username", c.SASLUsername),
		slog.String("sasl_password", c.SASLPassword.String()),
		slog.String("sasl_oauth_token_file", c.SASLOAuthTokenFile),
		slog.String("sasl_aws_region", c.SASLAWSRegion),
	)
}

// usesTLS reports whether TLS is on, explicitly or through a TLS file.
func (c Config) usesTLS() bool {
	return c.TLSEnabled || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != ""
}

// mechanism returns SASLMechanism in upper case.
func (c Config) mechanism() string {
	return strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
}

// Validate reports every problem in the settings at once, each naming its
// variable. It checks that the named files exist but not their content,
// which Opts parses. No message contains the password.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, c.validateTLS()...)
	errs = append(errs, c.validateSASL()...)
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("%s: invalid value %s: must not be negative", envDialTimeout, c.DialTimeout))
	}
	return errors.Join(errs...)
}

func (c Config) validateTLS() []error {
	var errs []error
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, fmt.Errorf("%s and %s must be set together", envTLSCertFile, envTLSKeyFile))
	}
	if c.TLSServerName != "" && !c.usesTLS() {
		errs = append(errs, fmt.Errorf("%s is set but TLS is off: set %s=true", envTLSServerName, envTLSEnabled))
	}
	if c.TLSReloadInterval < 0 {
		errs = append(errs, fmt.Errorf("%s: invalid value %s: must not be negative", envTLSReload, c.TLSReloadInterval))
	}
	errs = append(errs, checkFile(envTLSCAFile, c.TLSCAFile))
	errs = append(errs, checkFile(envTLSCertFile, c.TLSCertFile))
	errs = append(errs, checkFile(envTLSKeyFile, c.TLSKeyFile))
	return errs
}

func (c Config) validateSASL() []error {
	mechanism := c.mechanism()
	var errs []error
	switch mechanism {
	case "", MechanismOAuthBearer, MechanismAWSMSKIAM:
		errs = append(errs, unused(envSASLUsername, c.SASLUsername != "", mechanism))
		errs = append(errs, unused(envSASLPassword, c.SASLPassword != "", mechanism))
	case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
		errs = append(errs, required(envSASLUsername, c.SASLUsername != "", mechanism))
		errs = append(errs, required(envSASLPassword, c.SASLPassword != "", mechanism))
	default:
		errs = append(errs, fmt.Errorf("%s: unknown mechanism %q: use one of %s",
			envSASLMechanism, c.SASLMechanism, strings.Join(mechanisms, ", ")))
	}

	if mechanism == MechanismOAuthBearer {
		errs = append(errs, required(envSASLTokenFile, c.SASLOAuthTokenFile != "", mechanism))
		errs = append(errs, checkFile(envSASLTokenFile, c.SASLOAuthTokenFile))
	} else {
		errs = append(errs, unused(envSASLTokenFile, c.SASLOAuthTokenFile != "", mechanism))
	}
	if mechanism != MechanismAWSMSKIAM {
		errs = append(errs, unused(envSASLAWSRegion, c.SASLAWSRegion != "", mechanism))
	}
	return errs
}

// required returns an error when a variable that the mechanism needs is
// empty.
func required(name string, set bool, mechanism string) error {
	if set {
		return nil
	}
	return fmt.Errorf("%s is required with %s=%s", name, envSASLMechanism, mechanism)
}

// unused returns an error when a variable is set that the mechanism ignores,
// because a forgotten mechanism would otherwise send no credentials at all.
func unused(name string, set bool, mechanism string) error {
	if !set {
		return nil
	}
	if mechanism == "" {
		return fmt.Errorf("%s is set but %s is empty", name, envSASLMechanism)
	}
	return fmt.Errorf("%s is set but %s=%s does not use it", name, envSASLMechanism, mechanism)
}

// checkFile returns an error when path is set and is not a readable file.
func checkFile(name, path string) error {
	if path == "" {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if info.IsDir() {
		return fmt.Errorf("%s: %s is a directory, not a file", name, path)
	}
	return nil
}
