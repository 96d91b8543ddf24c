package kafkaconn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/llm-enricher/enricher/internal/kafkaconn"
	"github.com/llm-enricher/enricher/internal/kafkaconn/certtest"
	"github.com/llm-enricher/enricher/internal/kafkaconn/tlsreload"
)

const testTopic = "llm-calls"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startCluster starts a one-broker kfake cluster on 127.0.0.1 with the test
// topic and returns its address.
func startCluster(t *testing.T, opts ...kfake.Opt) string {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, testTopic)}, opts...)
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()[0]
}

// newClient builds a client from cfg.Opts and extra. A client without
// consume options dials nothing until its first request.
func newClient(t *testing.T, cfg kafkaconn.Config, addr string, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatalf("Opts: %v", err)
	}
	opts = append(opts,
		kgo.SeedBrokers(addr),
		// A connection error fails the request at once rather than
		// after the default retries, which keeps failure tests short.
		kgo.RequestRetries(0),
		kgo.RetryTimeout(time.Second),
	)
	client, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	t.Cleanup(client.Close)
	return client
}

// produce sends one record and returns the produce error.
func produce(client *kgo.Client, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return client.ProduceSync(ctx, &kgo.Record{Topic: testTopic, Value: []byte(value)}).FirstErr()
}

// ping sends ApiVersions to the broker and returns its error, which is how a
// connection problem surfaces at startup.
func ping(client *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return client.Ping(ctx)
}

// roundTrip produces a record and consumes it back through one client built
// from cfg.
func roundTrip(t *testing.T, cfg kafkaconn.Config, addr string) {
	t.Helper()
	client := newClient(t, cfg, addr,
		kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err := produce(client, "hello"); err != nil {
		t.Fatalf("producing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fetches := client.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatalf("consuming: %v", err)
	}
	records := fetches.Records()
	if len(records) != 1 {
		t.Fatalf("consumed %d records, want 1", len(records))
	}
	if got := string(records[0].Value); got != "hello" {
		t.Errorf("consumed value %q, want %q", got, "hello")
	}
}

func TestSASLRoundTrip(t *testing.T) {
	for _, mechanism := range []string{
		kafkaconn.MechanismPlain,
		kafkaconn.MechanismScramSHA256,
		kafkaconn.MechanismScramSHA512,
	} {
		t.Run(mechanism, func(t *testing.T) {
			addr := startCluster(t,
				kfake.EnableSASL(),
				kfake.Superuser(mechanism, "enricher", "s3cret-pass"),
			)
			cfg := kafkaconn.Config{
				SASLMechanism: mechanism,
				SASLUsername:  "enricher",
				SASLPassword:  "s3cret-pass",
			}
			roundTrip(t, cfg, addr)
		})
	}
}

func TestSASLWrongPassword(t *testing.T) {
	const password = "not-the-password"
	for _, mechanism := range []string{kafkaconn.MechanismPlain, kafkaconn.MechanismScramSHA512} {
		t.Run(mechanism, func(t *testing.T) {
			addr := startCluster(t,
				kfake.EnableSASL(),
				kfake.Superuser(mechanism, "enricher", "right-password"),
			)
			cfg := kafkaconn.Config{
				SASLMechanism: mechanism,
				SASLUsername:  "enricher",
				SASLPassword:  password,
			}
			err := cfg.Explain(ping(newClient(t, cfg, addr)))
			if err == nil {
				t.Fatal("ping succeeded with a wrong password")
			}
			assertContains(t, err, "SASL authentication failed")
			assertContains(t, err, `user "enricher"`)
			assertContains(t, err, mechanism)
			assertContains(t, err, "ENRICHER_KAFKA_SASL_PASSWORD")
			assertLacks(t, err, password)
		})
	}
}

// tlsCluster starts kfake behind TLS with a certificate from ca. It returns
// the address and a recorder of the client certificates the broker saw.
func tlsCluster(t *testing.T, ca *certtest.CA, clientAuth tls.ClientAuthType) (string, *peerRecorder) {
	t.Helper()
	recorder := &peerRecorder{}
	serverCert := ca.IssueServer(t, "broker.test")
	addr := startCluster(t, kfake.TLS(&tls.Config{
		Certificates:          []tls.Certificate{serverCert.TLSCertificate(t)},
		ClientAuth:            clientAuth,
		ClientCAs:             ca.Pool(),
		MinVersion:            tls.VersionTLS12,
		VerifyPeerCertificate: recorder.record,
	}))
	return addr, recorder
}

// peerRecorder stores the serial number of each client certificate that a
// TLS server verified.
type peerRecorder struct {
	mu      sync.Mutex
	serials []string
}

func (r *peerRecorder) record(_ [][]byte, chains [][]*x509.Certificate) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, chain := range chains {
		r.serials = append(r.serials, chain[0].SerialNumber.String())
	}
	return nil
}

func (r *peerRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.serials...)
}

func TestTLSRoundTripWithCAFile(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	addr, _ := tlsCluster(t, ca, tls.NoClientCert)
	dir := t.TempDir()
	caFile := dir + "/ca.pem"
	certtest.WriteFile(t, caFile, ca.PEM)

	roundTrip(t, kafkaconn.Config{TLSCAFile: caFile}, addr)
}

func TestTLSServerNameOverride(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	addr, _ := tlsCluster(t, ca, tls.NoClientCert)
	caFile := t.TempDir() + "/ca.pem"
	certtest.WriteFile(t, caFile, ca.PEM)

	cfg := kafkaconn.Config{TLSCAFile: caFile, TLSServerName: "broker.test"}
	roundTrip(t, cfg, addr)

	cfg.TLSServerName = "other.test"
	err := cfg.Explain(ping(newClient(t, cfg, addr)))
	if err == nil {
		t.Fatal("ping succeeded with a server name not in the certificate")
	}
	assertContains(t, err, "ENRICHER_KAFKA_TLS_SERVER_NAME")
}

func TestTLSUnknownCA(t *testing.T) {
	addr, _ := tlsCluster(t, certtest.NewCA(t, "broker CA"), tls.NoClientCert)
	caFile := t.TempDir() + "/ca.pem"
	certtest.WriteFile(t, caFile, certtest.NewCA(t, "other CA").PEM)

	cfg := kafkaconn.Config{TLSCAFile: caFile}
	err := cfg.Explain(ping(newClient(t, cfg, addr)))
	if err == nil {
		t.Fatal("ping succeeded against a broker signed by an unknown CA")
	}
	assertContains(t, err, "broker certificate is not trusted")
	assertContains(t, err, "ENRICHER_KAFKA_TLS_CA_FILE")
}

func TestMTLSRoundTrip(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	addr, recorder := tlsCluster(t, ca, tls.RequireAndVerifyClientCert)
	dir := t.TempDir()
	caFile := dir + "/ca.pem"
	certtest.WriteFile(t, caFile, ca.PEM)
	client := ca.IssueClient(t, "enricher", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	certFile, keyFile := client.WriteFiles(t, dir)

	cfg := kafkaconn.Config{TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile}
	roundTrip(t, cfg, addr)

	want := client.Cert.SerialNumber.String()
	for _, serial := range recorder.seen() {
		if serial != want {
			t.Errorf("broker saw client certificate %s, want %s", serial, want)
		}
	}
	if len(recorder.seen()) == 0 {
		t.Error("broker saw no client certificate")
	}
}

func TestMTLSMissingCertificate(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	addr, _ := tlsCluster(t, ca, tls.RequireAndVerifyClientCert)
	caFile := t.TempDir() + "/ca.pem"
	certtest.WriteFile(t, caFile, ca.PEM)

	cfg := kafkaconn.Config{TLSCAFile: caFile}
	err := cfg.Explain(ping(newClient(t, cfg, addr)))
	if err == nil {
		t.Fatal("ping succeeded without the client certificate the broker requires")
	}
	assertContains(t, err, "ENRICHER_KAFKA_TLS_CERT_FILE")
}

func TestMTLSCertificateRotation(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	addr, recorder := tlsCluster(t, ca, tls.RequireAndVerifyClientCert)
	dir := t.TempDir()
	caFile := dir + "/ca.pem"
	certtest.WriteFile(t, caFile, ca.PEM)
	notBefore, notAfter := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	first := ca.IssueClient(t, "enricher", notBefore, notAfter)
	certFile, keyFile := first.WriteFiles(t, dir)

	// Zero reload interval: every new connection checks the files, so
	// the test needs no clock.
	cfg := kafkaconn.Config{TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile}
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatalf("Opts: %v", err)
	}
	connect := func() {
		client, err := kgo.NewClient(append(opts, kgo.SeedBrokers(addr))...)
		if err != nil {
			t.Fatalf("creating client: %v", err)
		}
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := client.Ping(ctx); err != nil {
			t.Fatalf("pinging: %v", err)
		}
	}

	connect()
	second := ca.IssueClient(t, "enricher", notBefore, notAfter)
	second.WriteFiles(t, dir)
	connect()

	seen := recorder.seen()
	if len(seen) < 2 {
		t.Fatalf("broker saw %d client certificates, want at least 2", len(seen))
	}
	if got, want := seen[0], first.Cert.SerialNumber.String(); got != want {
		t.Errorf("first connection presented %s, want %s", got, want)
	}
	if got, want := seen[len(seen)-1], second.Cert.SerialNumber.String(); got != want {
		t.Errorf("connection after rotation presented %s, want %s", got, want)
	}
}

func TestMTLSExpiredCertificate(t *testing.T) {
	ca := certtest.NewCA(t, "test CA")
	addr, _ := tlsCluster(t, ca, tls.RequireAndVerifyClientCert)
	dir := t.TempDir()
	caFile := dir + "/ca.pem"
	certtest.WriteFile(t, caFile, ca.PEM)
	expired := ca.IssueClient(t, "enricher", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	certFile, keyFile := expired.WriteFiles(t, dir)
	cfg := kafkaconn.Config{TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile}

	// Opts accepts the expired certificate, so that the service keeps
	// running until the files are renewed, and each handshake fails.
	t.Run("at startup", func(t *testing.T) {
		err := cfg.Explain(ping(newClient(t, cfg, addr)))
		if err == nil {
			t.Fatal("ping succeeded with an expired client certificate")
		}
		assertContains(t, err, "the client certificate in ENRICHER_KAFKA_TLS_CERT_FILE expired at")
		assertContains(t, err, "renew it")
	})

	t.Run("after rotation", func(t *testing.T) {
		ca.IssueClient(t, "enricher", time.Now().Add(-time.Hour), time.Now().Add(time.Hour)).WriteFiles(t, dir)
		client := newClient(t, cfg, addr)
		expired.WriteFiles(t, dir)
		// The client has not dialed yet, so its first connection reads
		// the expired files.
		err := cfg.Explain(ping(client))
		if err == nil {
			t.Fatal("ping succeeded with an expired client certificate")
		}
		assertContains(t, err, "client certificate")
		assertContains(t, err, "expired")
		assertContains(t, err, "ENRICHER_KAFKA_TLS_CERT_FILE")
		var validity *tlsreload.ValidityError
		if !errors.As(err, &validity) {
			t.Errorf("error %v does not wrap a *tlsreload.ValidityError", err)
		}
	})
}

func assertContains(t *testing.T, err error, want string) {
	t.Helper()
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func assertLacks(t *testing.T, err error, secret string) {
	t.Helper()
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q contains the secret", err)
	}
}

// systemRootsAddrEnv carries the broker address to the child process of
// TestTLSSystemRoots.
const systemRootsAddrEnv = "KAFKACONN_TEST_SYSTEM_ROOTS_ADDR"

// TestTLSSystemRoots connects with TLS on and no CA file, so the broker is
// verified against the system roots. Go loads them once per process, on
// Linux from SSL_CERT_FILE when it is set, so the connection runs in a
// child process of the test binary with SSL_CERT_FILE naming the test CA.
func TestTLSSystemRoots(t *testing.T) {
	if addr := os.Getenv(systemRootsAddrEnv); addr != "" {
		if err := ping(newClient(t, kafkaconn.Config{TLSEnabled: true}, addr)); err != nil {
			t.Fatalf("ping with the system roots: %v", err)
		}
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("SSL_CERT_FILE sets the system roots only on Linux and other Unix systems")
	}

	ca := certtest.NewCA(t, "test CA")
	addr, _ := tlsCluster(t, ca, tls.NoClientCert)

	t.Run("CA not in the system roots", func(t *testing.T) {
		cfg := kafkaconn.Config{TLSEnabled: true}
		err := cfg.Explain(ping(newClient(t, cfg, addr)))
		if err == nil {
			t.Fatal("ping succeeded against a broker signed by a CA outside the system roots")
		}
		assertContains(t, err, "not trusted by the system roots: set ENRICHER_KAFKA_TLS_CA_FILE")
	})

	t.Run("CA in the system roots", func(t *testing.T) {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		certtest.WriteFile(t, caFile, ca.PEM)
		cmd := exec.Command(os.Args[0], "-test.run=^TestTLSSystemRoots$", "-test.count=1")
		cmd.Env = append(os.Environ(), systemRootsAddrEnv+"="+addr, "SSL_CERT_FILE="+caFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child process failed: %v\n%s", err, out)
		}
	})
}

// startSilentListener accepts connections on 127.0.0.1 and hands each one
// to serve, which stands for a listener that does not speak TLS.
func startSilentListener(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(conn) })
		}
	})
	return ln.Addr().String()
}

func TestTLSToListenerWithoutTLS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(net.Conn)
	}{
		// A Kafka plaintext listener reads the ClientHello as an
		// oversized request and closes the connection.
		{"closes", func(conn net.Conn) { conn.Close() }},
		// Until the dial timeout ends the handshake.
		{"never answers", func(conn net.Conn) {
			io.Copy(io.Discard, conn)
			conn.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startSilentListener(t, tc.serve)
			cfg := kafkaconn.Config{
				TLSEnabled:    true,
				DialTimeout:   500 * time.Millisecond,
				SASLMechanism: kafkaconn.MechanismPlain,
				SASLUsername:  "enricher",
				SASLPassword:  "not-sent",
			}
			err := cfg.Explain(ping(newClient(t, cfg, addr)))
			if err == nil {
				t.Fatal("ping succeeded against a listener without TLS")
			}
			assertContains(t, err, "during the TLS handshake")
			assertContains(t, err, "ENRICHER_KAFKA_BROKERS")
			assertContains(t, err, "ENRICHER_KAFKA_TLS_ENABLED")
			assertLacks(t, err, "SASL authentication failed")
		})
	}
}
