package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// Roots is a pool of trusted CA certificates loaded from a PEM file and
// reloaded when the file changes.
type Roots struct {
	w *watched[*x509.CertPool]
}

// NewRoots loads the CA certificates in caFile. When withSystem is true the
// pool also contains the system roots. It returns an error when the file
// cannot be read or contains no PEM certificate.
func NewRoots(caFile string, withSystem bool, interval time.Duration) (*Roots, error) {
	parse := func(contents [][]byte) (*x509.CertPool, error) {
		pool := x509.NewCertPool()
		if withSystem {
			// A system without a usable root store still gets the CA
			// file, which is all that a private deployment needs.
			if system, err := x509.SystemCertPool(); err == nil {
				pool = system
			}
		}
		if !pool.AppendCertsFromPEM(contents[0]) {
			return nil, fmt.Errorf("parsing %s: no PEM certificate found", caFile)
		}
		return pool, nil
	}
	w, err := newWatched([]string{caFile}, interval, parse)
	if err != nil {
		return nil, err
	}
	return &Roots{w: w}, nil
}

// Pool returns the current pool and its generation, which grows by one each
// time a changed file was loaded.
func (r *Roots) Pool() (*x509.CertPool, uint64) {
	return r.w.current()
}

// KeyPair is a client certificate and private key loaded from PEM files and
// reloaded when either file changes.
type KeyPair struct {
	certFile string
	w        *watched[*tls.Certificate]
}

// NewKeyPair loads the certificate chain in certFile and its private key in
// keyFile. It returns an error when either file cannot be read or the two do
// not form a key pair. It accepts an expired certificate, which
// GetClientCertificate and CheckValidity report.
func NewKeyPair(certFile, keyFile string, interval time.Duration) (*KeyPair, error) {
	parse := func(contents [][]byte) (*tls.Certificate, error) {
		cert, err := tls.X509KeyPair(contents[0], contents[1])
		if err != nil {
			return nil, fmt.Errorf("parsing key pair %s and %s: %w", certFile, keyFile, err)
		}
		// tls.X509KeyPair fills Leaf since Go 1.23, and the validity
		// checks below depend on it.
		if cert.Leaf == nil {
			if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, fmt.Errorf("parsing certificate %s: %w", certFile, err)
			}
		}
		return &cert, nil
	}
	w, err := newWatched([]string{certFile, keyFile}, interval, parse)
	if err != nil {
		return nil, err
	}
	return &KeyPair{certFile: certFile, w: w}, nil
}

// Certificate returns the current key pair.
func (k *KeyPair) Certificate() *tls.Certificate {
	cert, _ := k.w.current()
	return cert
}

// CheckValidity returns a *ValidityError when the current certificate is
// expired or not yet valid.
func (k *KeyPair) CheckValidity() error {
	return k.checkValidity(k.Certificate(), time.Now())
}

// GetClientCertificate returns the current key pair, and is meant for
// tls.Config.GetClientCertificate. It returns a *ValidityError in place of a
// certificate that the server would reject as expired or not yet valid.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	cert := k.Certificate()
	if err := k.checkValidity(cert, time.Now()); err != nil {
		return nil, err
	}
	return cert, nil
}

func (k *KeyPair) checkValidity(cert *tls.Certificate, now time.Time) error {
	leaf := cert.Leaf
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return &ValidityError{
			CertFile:  k.certFile,
			NotBefore: leaf.NotBefore,
			NotAfter:  leaf.NotAfter,
		}
	}
	return nil
}

// ValidityError reports a client certificate used outside its validity
// period.
type ValidityError struct {
	// CertFile is the file the certificate was loaded from.
	CertFile string
	// NotBefore and NotAfter bound the certificate's validity period.
	NotBefore, NotAfter time.Time
}

// Expired reports whether the validity period has ended, as opposed to not
// having started yet.
func (e *ValidityError) Expired() bool {
	return time.Now().After(e.NotAfter)
}

// Error implements error.
func (e *ValidityError) Error() string {
	if e.Expired() {
		return fmt.Sprintf("client certificate in %s expired at %s",
			e.CertFile, e.NotAfter.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("client certificate in %s is not valid before %s",
		e.CertFile, e.NotBefore.UTC().Format(time.RFC3339))
}
