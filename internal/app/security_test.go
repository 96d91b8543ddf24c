package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/llm-enricher/enricher/internal/capturetest"
	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/kafkaconn/certtest"
	"github.com/llm-enricher/enricher/internal/kafkatest"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

// secureKafka is a kfake broker that requires TLS or SASL, with the client
// options that the test itself uses to produce and to read offsets.
type secureKafka struct {
	*kfake.Cluster
	addr string
	opts []kgo.Opt
}

// startSecureKafka starts one kfake broker with the source, dead-letter
// and extra topics. adminOpts let the test's own clients in.
func startSecureKafka(t *testing.T, kfakeOpts []kfake.Opt, adminOpts []kgo.Opt, extraTopics ...string) *secureKafka {
	t.Helper()
	opts := append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(1, append([]string{topic, dlqT}, extraTopics...)...),
	}, kfakeOpts...)
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	return &secureKafka{Cluster: cluster, addr: cluster.ListenAddrs()[0], opts: adminOpts}
}

// client returns a client with the admin options, closed when the test
// ends.
func (k *secureKafka) client(t *testing.T, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts := append([]kgo.Opt{kgo.SeedBrokers(k.addr)}, k.opts...)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("creating client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes records with the given keys and values to partition 0 of
// topicName. A nil key list writes records without keys.
func (k *secureKafka) produce(t *testing.T, topicName string, keys []string, values [][]byte) {
	t.Helper()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topicName, Value: v}
		if keys != nil {
			recs[i].Key = []byte(keys[i])
		}
	}
	cl := k.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing to %s: %v", topicName, err)
	}
}

// committed returns the group's committed offset of partition 0, or -1.
func (k *secureKafka) committed(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offsets, err := kadm.NewClient(k.client(t)).FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	o, ok := offsets.Lookup(topic, 0)
	if !ok || o.Err != nil {
		return -1
	}
	return o.At
}

// readAll reads n records of topicName from the start.
func (k *secureKafka) readAll(t *testing.T, topicName string, n int) []*kgo.Record {
	t.Helper()
	cl := k.client(t, kgo.ConsumeTopics(topicName), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// lines returns the logged lines that contain every one of substrings.
func (b *lockedBuffer) lines(substrings ...string) []string {
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		match := line != ""
		for _, s := range substrings {
			match = match && strings.Contains(line, s)
		}
		if match {
			out = append(out, line)
		}
	}
	return out
}

// service is one enricher run by Run, with its log.
type service struct {
	*instance
	logs   *lockedBuffer
	stdout *lockedBuffer
}

// startService parses environ as the process would and runs the
// enricher, logging at debug level so that franz-go's output is checked
// as well.
func startService(t *testing.T, environ map[string]string) *service {
	t.Helper()
	cfg, err := config.Parse(environ)
	if err != nil {
		t.Fatalf("parsing the configuration: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{
		instance: &instance{cancel: cancel, done: make(chan error, 1)},
		logs:     &lockedBuffer{},
		stdout:   &lockedBuffer{},
	}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(s.logs, testWriter(t)), &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { s.done <- Run(ctx, cfg, log, s.stdout) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// running reports whether Run has not returned.
func (s *service) running() bool {
	select {
	case err := <-s.done:
		s.done <- err
		return false
	default:
		return true
	}
}

// serviceEnv returns the variables for an enricher that reads from addr
// and sends to capture. Health and metrics listen on a free loopback port,
// because an empty ENRICHER_HTTP_ADDR means the default :8080.
func serviceEnv(t *testing.T, addr string, capture *capturetest.Server) map[string]string {
	return map[string]string{
		"ENRICHER_KAFKA_BROKERS":           addr,
		"ENRICHER_KAFKA_TOPICS":            topic,
		"ENRICHER_KAFKA_GROUP":             group,
		"ENRICHER_DLQ_TOPIC":               dlqT,
		"ENRICHER_POSTHOG_API_KEY":         capture.Key,
		"ENRICHER_POSTHOG_HOST":            capture.URL,
		"ENRICHER_POSTHOG_FLUSH_INTERVAL":  "50ms",
		"ENRICHER_COMMIT_INTERVAL":         "100ms",
		"ENRICHER_HTTP_ADDR":               freeAddr(t),
		"ENRICHER_SHUTDOWN_TIMEOUT":        "10s",
		"ENRICHER_KAFKA_REBALANCE_TIMEOUT": "20s",
		"ENRICHER_REVOKE_TIMEOUT":          "10s",
		"ENRICHER_KAFKA_SESSION_TIMEOUT":   "10s",
	}
}

// kafkaTLS returns a TLS server configuration for kfake with a certificate
// for 127.0.0.1 and broker.test signed by ca. It records the serial number
// of every client certificate that it verifies.
func kafkaTLS(t *testing.T, ca *certtest.CA, clientAuth tls.ClientAuthType, seen *serials) *tls.Config {
	t.Helper()
	return &tls.Config{
		Certificates:          []tls.Certificate{ca.IssueServer(t, "broker.test").TLSCertificate(t)},
		ClientAuth:            clientAuth,
		ClientCAs:             ca.Pool(),
		MinVersion:            tls.VersionTLS12,
		VerifyPeerCertificate: seen.record,
	}
}

// serials stores the serial numbers of the client certificates a TLS
// server verified, in order.
type serials struct {
	mu   sync.Mutex
	list []string
}

func (s *serials) record(_ [][]byte, chains [][]*x509.Certificate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, chain := range chains {
		s.list = append(s.list, chain[0].SerialNumber.String())
	}
	return nil
}

func (s *serials) contains(serial string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.list, serial)
}

// validClient issues a client certificate valid for an hour either side of
// now.
func validClient(t *testing.T, ca *certtest.CA, name string) certtest.Leaf {
	return ca.IssueClient(t, name, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// writeCA writes ca's certificate into dir/ca.pem and returns the path.
func writeCA(t *testing.T, dir string, ca *certtest.CA) string {
	path := filepath.Join(dir, "ca.pem")
	certtest.WriteFile(t, path, ca.PEM)
	return path
}

// get returns the status and body of a GET of url, or 0 when the request
// failed.
func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// assertNoSecret fails when any output of the run contains a secret.
func assertNoSecret(t *testing.T, outputs map[string]string, secrets ...string) {
	t.Helper()
	for name, output := range outputs {
		for _, secret := range secrets {
			if strings.Contains(output, secret) {
				t.Errorf("%s contains the secret %q", name, secret)
			}
		}
	}
}

// withPromptLookup adds a Kafka-table lookup of the "prompts" topic, keyed
// by conversation id, and a rule that sets prompt_version from it.
func withPromptLookup(env map[string]string) {
	env["ENRICHER_LOOKUPS"] = `[{"name":"prompts","key":"properties.conversation_id","deadline":"20s","kafka":{"topic":"prompts"}}]`
	env["ENRICHER_RULES"] = `[{"set":"prompt_version","lookup":"prompts","field":"version"}]`
}

// checkPromptVersions waits for the two valid records of the secure-broker
// tests, checks their prompt_version from the lookup, and checks that the
// invalid third record reached the dead-letter topic.
func checkPromptVersions(t *testing.T, k *secureKafka, capture *capturetest.Server, want float64) {
	t.Helper()
	kafkatest.Eventually(t, 30*time.Second, "2 events delivered", func() bool { return len(capture.UUIDs()) == 2 })
	for _, ev := range capture.Events() {
		var version float64
		if !ev.Prop("prompt_version", &version) || version != want {
			t.Errorf("event %s prompt_version = %v, want %v from the Kafka-table lookup", ev.UUID, version, want)
		}
	}
	if dead := k.readAll(t, dlqT, 1); len(dead) != 1 {
		t.Errorf("%d dead letters, want 1", len(dead))
	}
}

// TestServiceSASL runs the enricher against a broker that requires SASL
// and checks that the consumer, the dead-letter producer and a Kafka-table
// lookup all authenticate.
func TestServiceSASL(t *testing.T) {
	const password = "sasl-pass-7f3c"
	for _, mechanism := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mechanism, func(t *testing.T) {
			auth := saslAuth(mechanism, "enricher", password)
			k := startSecureKafka(t, []kfake.Opt{
				kfake.EnableSASL(),
				kfake.Superuser(mechanism, "enricher", password),
			}, []kgo.Opt{kgo.SASL(auth)}, "prompts")
			k.produce(t, "prompts", []string{"cv-9"}, [][]byte{[]byte(`{"version":7}`)})
			k.produce(t, topic, nil, append(records("s", 2), []byte(`{"id":`)))

			capture := capturetest.New(t)
			env := serviceEnv(t, k.addr, capture)
			env["ENRICHER_KAFKA_SASL_MECHANISM"] = mechanism
			env["ENRICHER_KAFKA_SASL_USERNAME"] = "enricher"
			env["ENRICHER_KAFKA_SASL_PASSWORD"] = password
			withPromptLookup(env)
			s := startService(t, env)

			checkPromptVersions(t, k, capture, 7)
			kafkatest.Eventually(t, 10*time.Second, "offset 3 committed", func() bool { return k.committed(t) == 3 })
			if len(s.logs.lines(`"msg":"connected to Kafka"`)) == 0 {
				t.Error("no \"connected to Kafka\" log line")
			}
			_, metrics := get("http://" + env["ENRICHER_HTTP_ADDR"] + "/metrics")

			err := s.stop(t)
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
			assertNoSecret(t, map[string]string{"the log": s.logs.String(), "/metrics": metrics, "Run's error": fmt.Sprint(err)}, password)
		})
	}
}

func saslAuth(mechanism, user, password string) sasl.Mechanism {
	switch mechanism {
	case "PLAIN":
		return plain.Auth{User: user, Pass: password}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
	default:
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
	}
}

// TestServiceMTLSRotation runs the enricher with a client certificate,
// replaces the certificate files while it runs, and checks that the broker
// sees the new certificate on the next connection while delivery goes on.
func TestServiceMTLSRotation(t *testing.T) {
	ca := certtest.NewCA(t, "cluster CA")
	seen := &serials{}
	admin := validClient(t, ca, "admin")
	k := startSecureKafka(t, []kfake.Opt{kfake.TLS(kafkaTLS(t, ca, tls.RequireAndVerifyClientCert, seen))},
		[]kgo.Opt{kgo.DialTLSConfig(&tls.Config{
			RootCAs:      ca.Pool(),
			Certificates: []tls.Certificate{admin.TLSCertificate(t)},
		})})
	dir := t.TempDir()
	first := validClient(t, ca, "enricher")
	certFile, keyFile := first.WriteFiles(t, dir)

	capture := capturetest.New(t)
	env := serviceEnv(t, k.addr, capture)
	env["ENRICHER_KAFKA_TLS_CA_FILE"] = writeCA(t, dir, ca)
	env["ENRICHER_KAFKA_TLS_CERT_FILE"] = certFile
	env["ENRICHER_KAFKA_TLS_KEY_FILE"] = keyFile
	env["ENRICHER_KAFKA_TLS_SERVER_NAME"] = "broker.test"
	env["ENRICHER_KAFKA_TLS_RELOAD_INTERVAL"] = "0s"
	k.produce(t, topic, nil, records("before", 3))
	s := startService(t, env)

	kafkatest.Eventually(t, 30*time.Second, "3 events delivered", func() bool { return len(capture.UUIDs()) == 3 })
	if !seen.contains(first.Cert.SerialNumber.String()) {
		t.Fatal("broker never saw the first client certificate")
	}

	second := validClient(t, ca, "enricher")
	second.WriteFiles(t, dir)
	// Fetch connections stay open, so the broker closes one to make the
	// client dial again with the files as they are now.
	k.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		return nil, errors.New("closing the connection"), true
	})
	k.produce(t, topic, nil, records("after", 3))

	kafkatest.Eventually(t, 30*time.Second, "6 events delivered", func() bool { return len(capture.UUIDs()) == 6 })
	kafkatest.Eventually(t, 30*time.Second, "the broker sees the rotated certificate", func() bool {
		return seen.contains(second.Cert.SerialNumber.String())
	})
	kafkatest.Eventually(t, 10*time.Second, "offset 6 committed", func() bool { return k.committed(t) == 6 })
	if err := s.stop(t); err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
	assertNoSecret(t, map[string]string{"the log": s.logs.String()}, pemBody(first.KeyPEM), pemBody(second.KeyPEM))
}

// pemBody returns the first line of base64 in a PEM block, which is part
// of the secret key material.
func pemBody(block []byte) string {
	return strings.Split(string(block), "\n")[1]
}

// brokenConnection is a broker that rejects the enricher's settings, and
// the change on the broker or in the mounted files that repairs them.
type brokenConnection struct {
	kafka *secureKafka
	// env is added to the enricher's variables.
	env map[string]string
	// want are the parts of the explained error that each failed attempt
	// logs.
	want []string
	// secrets must appear in no output.
	secrets []string
	// repair makes the next connection succeed without a restart.
	repair func()
}

func wrongPassword(t *testing.T) brokenConnection {
	const wrong = "wrong-pass-5e1d"
	k := startSecureKafka(t, []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "enricher", "right-pass-a92b"),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pass"),
	}, []kgo.Opt{kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pass"}.AsSha256Mechanism())}, "prompts")
	return brokenConnection{
		kafka: k,
		env: map[string]string{
			"ENRICHER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
			"ENRICHER_KAFKA_SASL_USERNAME":  "enricher",
			"ENRICHER_KAFKA_SASL_PASSWORD":  wrong,
		},
		want: []string{
			`SASL authentication failed for user \"enricher\" with mechanism SCRAM-SHA-512`,
			"ENRICHER_KAFKA_SASL_PASSWORD",
		},
		secrets: []string{wrong, "right-pass-a92b"},
		// The broker's operator sets the password that the enricher has.
		repair: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			altered, err := kadm.NewClient(k.client(t)).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
				User: "enricher", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: wrong,
			}})
			if err == nil {
				err = altered.Error()
			}
			if err != nil {
				t.Fatalf("changing the password: %v", err)
			}
		},
	}
}

func unknownCA(t *testing.T) brokenConnection {
	brokerCA := certtest.NewCA(t, "broker CA")
	k := startSecureKafka(t, []kfake.Opt{kfake.TLS(kafkaTLS(t, brokerCA, tls.NoClientCert, &serials{}))},
		[]kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: brokerCA.Pool()})}, "prompts")
	dir := t.TempDir()
	caFile := writeCA(t, dir, certtest.NewCA(t, "other CA"))
	return brokenConnection{
		kafka: k,
		env: map[string]string{
			"ENRICHER_KAFKA_TLS_CA_FILE":         caFile,
			"ENRICHER_KAFKA_TLS_RELOAD_INTERVAL": "0s",
		},
		want: []string{
			"the broker certificate is not trusted by the CA in ENRICHER_KAFKA_TLS_CA_FILE",
			"set it to the CA that signed the broker certificate",
		},
		// The mounted Secret is updated with the right CA.
		repair: func() { writeCA(t, dir, brokerCA) },
	}
}

func expiredCertificate(t *testing.T) brokenConnection {
	ca := certtest.NewCA(t, "cluster CA")
	admin := validClient(t, ca, "admin")
	k := startSecureKafka(t, []kfake.Opt{kfake.TLS(kafkaTLS(t, ca, tls.RequireAndVerifyClientCert, &serials{}))},
		[]kgo.Opt{kgo.DialTLSConfig(&tls.Config{
			RootCAs:      ca.Pool(),
			Certificates: []tls.Certificate{admin.TLSCertificate(t)},
		})}, "prompts")
	dir := t.TempDir()
	expired := ca.IssueClient(t, "enricher", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	certFile, keyFile := expired.WriteFiles(t, dir)
	renewed := validClient(t, ca, "enricher")
	return brokenConnection{
		kafka: k,
		env: map[string]string{
			"ENRICHER_KAFKA_TLS_CA_FILE":         writeCA(t, dir, ca),
			"ENRICHER_KAFKA_TLS_CERT_FILE":       certFile,
			"ENRICHER_KAFKA_TLS_KEY_FILE":        keyFile,
			"ENRICHER_KAFKA_TLS_RELOAD_INTERVAL": "0s",
		},
		want: []string{
			"the client certificate in ENRICHER_KAFKA_TLS_CERT_FILE expired at " +
				expired.Cert.NotAfter.UTC().Format(time.RFC3339),
			"renew it",
		},
		secrets: []string{pemBody(expired.KeyPEM), pemBody(renewed.KeyPEM)},
		// cert-manager renews the certificate in place.
		repair: func() { renewed.WriteFiles(t, dir) },
	}
}

func expiredBrokerCertificate(t *testing.T) brokenConnection {
	ca := certtest.NewCA(t, "cluster CA")
	expired := ca.IssueServerValid(t, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)).TLSCertificate(t)
	renewed := ca.IssueServer(t).TLSCertificate(t)
	var current atomic.Pointer[tls.Certificate]
	current.Store(&expired)
	serverTLS := &tls.Config{
		// The broker serves whichever certificate is current, as a
		// broker that reloads its keystore would.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil },
		MinVersion:     tls.VersionTLS12,
	}
	// The test's own client skips verification, because the broker's
	// certificate is expired until the repair.
	k := startSecureKafka(t, []kfake.Opt{kfake.TLS(serverTLS)},
		[]kgo.Opt{kgo.DialTLSConfig(&tls.Config{InsecureSkipVerify: true})}, "prompts")
	return brokenConnection{
		kafka: k,
		env: map[string]string{
			"ENRICHER_KAFKA_TLS_CA_FILE": writeCA(t, t.TempDir(), ca),
		},
		want: []string{
			"the broker certificate is expired or not yet valid",
			"renew it on the broker",
		},
		repair: func() { current.Store(&renewed) },
	}
}

// TestServiceConnectionFailure runs the enricher, with a Kafka-table
// lookup, on a setting that the broker rejects. The enricher must keep
// running and not ready, log the explained error with a growing backoff,
// never print a secret, and recover without a restart once the setting is
// repaired.
func TestServiceConnectionFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*testing.T) brokenConnection
	}{
		{"wrong password", wrongPassword},
		{"unknown CA", unknownCA},
		{"expired client certificate", expiredCertificate},
		{"expired broker certificate", expiredBrokerCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := tc.setup(t)
			broken.kafka.produce(t, "prompts", []string{"cv-9"}, [][]byte{[]byte(`{"version":5}`)})
			broken.kafka.produce(t, topic, nil, records("f", 2))
			capture := capturetest.New(t)
			env := serviceEnv(t, broken.kafka.addr, capture)
			env["ENRICHER_LOOKUPS"] = `[{"name":"prompts","key":"properties.conversation_id","deadline":"30s","kafka":{"topic":"prompts"}}]`
			env["ENRICHER_RULES"] = `[{"set":"prompt_version","lookup":"prompts","field":"version"}]`
			maps.Copy(env, broken.env)
			s := startService(t, env)
			base := "http://" + env["ENRICHER_HTTP_ADDR"]

			const failed = `"msg":"connecting to Kafka failed; retrying"`
			kafkatest.Eventually(t, 30*time.Second, "3 failed attempts logged", func() bool {
				return len(s.logs.lines(failed)) >= 3
			})
			attempts := s.logs.lines(failed)
			for i, line := range attempts[:3] {
				for _, want := range broken.want {
					if !strings.Contains(line, want) {
						t.Errorf("attempt %d logged %s, want it to contain %q", i+1, line, want)
					}
				}
				if want := fmt.Sprintf(`"attempt":%d,`, i+1); !strings.Contains(line, want) {
					t.Errorf("attempt %d logged %s, want %s", i+1, line, want)
				}
				if want := fmt.Sprintf(`"retry_in":"%s"`, checkBackoff(i+1)); !strings.Contains(line, want) {
					t.Errorf("attempt %d logged %s, want %s", i+1, line, want)
				}
			}
			const lookupFailed = `"msg":"listing lookup table offsets failed`
			kafkatest.Eventually(t, 30*time.Second, "2 failed lookup table attempts logged", func() bool {
				return len(s.logs.lines(lookupFailed)) >= 2
			})
			for i, line := range s.logs.lines(lookupFailed)[:2] {
				if want := fmt.Sprintf(`"retry_in":"%s"`, time.Second<<i); !strings.Contains(line, want) {
					t.Errorf("lookup attempt %d logged %s, want %s", i+1, line, want)
				}
			}
			// franz-go retries too, and logs each failed attempt.
			kafkatest.Eventually(t, 60*time.Second, "3 connections opened by the consumer", func() bool {
				return len(s.logs.lines(`"msg":"opening connection to broker"`, `"component":"franz-go"`)) >= 3
			})
			if !s.running() {
				t.Fatalf("Run returned %v while the connection failed, want it to keep retrying", s.stop(t))
			}
			status, readyBody := get(base + "/readyz")
			if status != http.StatusServiceUnavailable {
				t.Errorf("/readyz = %d %q while the connection fails, want 503", status, readyBody)
			}
			if n := len(capture.UUIDs()); n != 0 {
				t.Errorf("%d events delivered while the connection fails, want 0", n)
			}
			_, metrics := get(base + "/metrics")

			broken.repair()
			kafkatest.Eventually(t, 60*time.Second, "2 events delivered after the repair", func() bool {
				return len(capture.UUIDs()) == 2
			})
			for _, ev := range capture.Events() {
				var version float64
				if !ev.Prop("prompt_version", &version) || version != 5 {
					t.Errorf("event %s prompt_version = %v, want 5 from the Kafka-table lookup", ev.UUID, version)
				}
			}
			kafkatest.Eventually(t, 30*time.Second, "/readyz 200 after the repair", func() bool {
				status, _ := get(base + "/readyz")
				return status == http.StatusOK
			})
			// The check logs the recovery at its next attempt, which may
			// come after the consumer has reconnected on its own.
			kafkatest.Eventually(t, 30*time.Second, "connected to Kafka logged", func() bool {
				return len(s.logs.lines(`"msg":"connected to Kafka"`)) == 1
			})

			err := s.stop(t)
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
			// franz-go retried every few seconds in the consumer and the
			// lookup, but the run took less than kafkaconn.RepeatWindow,
			// so each client's warnings show once.
			seen := make(map[string]bool)
			for _, line := range s.logs.lines(`"msg":"unable to open connection to broker`) {
				if !strings.Contains(line, `"level":"WARN"`) && !strings.Contains(line, `"level":"ERROR"`) {
					continue
				}
				withoutTime := line[strings.Index(line, `"level"`):]
				if seen[withoutTime] {
					t.Errorf("franz-go logged %s more than once", withoutTime)
				}
				seen[withoutTime] = true
			}
			assertNoSecret(t, map[string]string{
				"the log":     s.logs.String(),
				"/readyz":     readyBody,
				"/metrics":    metrics,
				"Run's error": fmt.Sprint(err),
			}, append(broken.secrets, capture.Key)...)
		})
	}
}

// startTLSCapture serves capture's PostHog contract over TLS with a
// certificate for posthog.test signed by ca, and returns the address.
func startTLSCapture(t *testing.T, capture *capturetest.Server, ca *certtest.CA) string {
	server := httptest.NewUnstartedServer(capture.Config.Handler)
	server.TLS = &tls.Config{Certificates: []tls.Certificate{ca.IssueServer(t, "posthog.test").TLSCertificate(t)}}
	// The run without the CA file fails handshakes on purpose.
	server.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	server.StartTLS()
	t.Cleanup(server.Close)
	return server.Listener.Addr().String()
}

// TestServicePostHogPrivateCAThroughProxy sends events to a self-hosted
// PostHog behind a private CA, reached through the HTTPS_PROXY. The host
// name posthog.test resolves nowhere, so only the proxy can reach it.
func TestServicePostHogPrivateCAThroughProxy(t *testing.T) {
	ca := certtest.NewCA(t, "private CA")
	capture := capturetest.New(t)
	addr := startTLSCapture(t, capture, ca)
	proxy := testsupport.StartProxy(t, addr)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	t.Setenv("https_proxy", "")
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	_, port, _ := net.SplitHostPort(addr)
	host := "posthog.test:" + port

	k := kafkatest.New(t, 1, topic, dlqT)
	env := serviceEnv(t, k.Addrs()[0], capture)
	env["ENRICHER_POSTHOG_HOST"] = "https://" + host

	t.Run("CA file", func(t *testing.T) {
		k.ProduceValues(topic, records("p", 3)...)
		env["ENRICHER_POSTHOG_CA_FILE"] = writeCA(t, t.TempDir(), ca)
		s := startService(t, env)

		kafkatest.Eventually(t, 30*time.Second, "3 events delivered", func() bool { return len(capture.UUIDs()) == 3 })
		if targets := proxy.Targets(); !slices.Contains(targets, host) {
			t.Errorf("proxy saw CONNECT targets %q, want %s", targets, host)
		}
		if err := s.stop(t); err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		assertNoSecret(t, map[string]string{"the log": s.logs.String()}, capture.Key)
	})

	t.Run("no CA file", func(t *testing.T) {
		k.ProduceValues(topic, records("q", 1)...)
		delete(env, "ENRICHER_POSTHOG_CA_FILE")
		s := startService(t, env)

		kafkatest.Eventually(t, 30*time.Second, "a failed delivery logged", func() bool {
			return len(s.logs.lines(`"msg":"delivery to PostHog failed; retrying"`)) > 0
		})
		line := s.logs.lines(`"msg":"delivery to PostHog failed; retrying"`)[0]
		for _, want := range []string{"certificate signed by unknown authority", "ENRICHER_POSTHOG_CA_FILE"} {
			if !strings.Contains(line, want) {
				t.Errorf("logged %s, want it to contain %q", line, want)
			}
		}
		if n := len(capture.UUIDs()); n != 3 {
			t.Errorf("%d events delivered in all, want only the 3 of the first run", n)
		}
	})
}

func TestCheckBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{6, 32 * time.Second},
		{7, time.Minute},
		{1000, time.Minute},
	} {
		if got := checkBackoff(tc.failures); got != tc.want {
			t.Errorf("checkBackoff(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
}

// TestServiceOAuthBearerTokenRotation runs the enricher with a token file
// and a broker that gives each SASL session a 3s lifetime. A token written
// while the enricher runs must be sent when the sessions are renewed,
// without a new connection.
func TestServiceOAuthBearerTokenRotation(t *testing.T) {
	const first, second = "tok-one-4b1e", "tok-two-c83a"
	k := startSecureKafka(t, nil, nil)
	recorder := testsupport.RecordSASL(k.Cluster, "", 3*time.Second)
	tokenFile := filepath.Join(t.TempDir(), "token")
	certtest.WriteFile(t, tokenFile, []byte(first+"\n"))

	capture := capturetest.New(t)
	env := serviceEnv(t, k.addr, capture)
	env["ENRICHER_KAFKA_SASL_MECHANISM"] = "OAUTHBEARER"
	env["ENRICHER_KAFKA_SASL_OAUTH_TOKEN_FILE"] = tokenFile
	k.produce(t, topic, nil, records("o", 2))
	s := startService(t, env)

	kafkatest.Eventually(t, 30*time.Second, "2 events delivered", func() bool { return len(capture.UUIDs()) == 2 })
	if len(recorder.Containing("auth=Bearer "+first+"\x01")) == 0 {
		t.Fatal("no authentication carried the first token")
	}

	certtest.WriteFile(t, tokenFile, []byte(second+"\n"))
	kafkatest.Eventually(t, 30*time.Second, "a renewed session carries the second token", func() bool {
		return len(recorder.Containing("auth=Bearer "+second+"\x01")) > 0
	})
	k.produce(t, topic, nil, records("p", 2))
	kafkatest.Eventually(t, 30*time.Second, "4 events delivered", func() bool { return len(capture.UUIDs()) == 4 })

	if err := s.stop(t); err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
	assertNoSecret(t, map[string]string{"the log": s.logs.String()}, first, second)
}

// TestServiceAWSMSKIAM runs the enricher with AWS_MSK_IAM and static
// credentials in the environment. The credential chain must stop at them,
// so nothing is sent to an AWS endpoint or the instance metadata address.
func TestServiceAWSMSKIAM(t *testing.T) {
	const accessKey, secretKey = "AKIDSERVICETEST", "aws-secret-9a7c"
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	k := startSecureKafka(t, nil, nil, "prompts")
	recorder := testsupport.RecordSASL(k.Cluster, `{"version":"2020_10_22","request-id":"test"}`, 0)
	k.produce(t, "prompts", []string{"cv-9"}, [][]byte{[]byte(`{"version":4}`)})
	k.produce(t, topic, nil, append(records("m", 2), []byte(`{"id":`)))

	capture := capturetest.New(t)
	env := serviceEnv(t, k.addr, capture)
	env["ENRICHER_KAFKA_SASL_MECHANISM"] = "AWS_MSK_IAM"
	withPromptLookup(env)
	s := startService(t, env)

	checkPromptVersions(t, k, capture, 4)
	total := len(recorder.Messages())
	signed := recorder.Containing(`"action":"kafka-cluster:Connect"`)
	if len(signed) == 0 || len(signed) != total {
		t.Errorf("%d of %d authentications are MSK IAM requests, want all and at least one", len(signed), total)
	}
	for _, want := range []string{accessKey + "/", "/eu-west-1/kafka-cluster/aws4_request", `"x-amz-signature":"`} {
		if n := len(recorder.Containing(want)); n != total {
			t.Errorf("%d of %d authentications contain %q, want all", n, total, want)
		}
	}
	if n := len(recorder.Containing(secretKey)); n != 0 {
		t.Errorf("%d authentications contain the AWS secret key", n)
	}

	if err := s.stop(t); err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
	assertNoSecret(t, map[string]string{"the log": s.logs.String()}, secretKey)
}

// TestKafkaCheckLogsLostConnection runs the check on a client whose broker
// stops after the first ping.
func TestKafkaCheckLogsLostConnection(t *testing.T) {
	k := startSecureKafka(t, nil, nil)
	logs := &lockedBuffer{}
	check := &kafkaCheck{
		ping:     k.client(t).Ping,
		brokers:  []string{k.addr},
		log:      slog.New(slog.NewJSONHandler(logs, nil)),
		interval: 10 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		check.run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	kafkatest.Eventually(t, 30*time.Second, "connected to Kafka logged", func() bool {
		return len(logs.lines(`"msg":"connected to Kafka"`, `"attempt":1`)) == 1
	})
	k.Close()
	kafkatest.Eventually(t, 30*time.Second, "lost connection logged", func() bool {
		return len(logs.lines(`"msg":"connection to Kafka lost; retrying"`, `"attempt":1,`, `"retry_in":"1s"`)) == 1
	})
	if n := len(logs.lines(`"msg":"connected to Kafka"`)); n != 1 {
		t.Errorf("%d \"connected to Kafka\" lines, want 1: a ping that keeps succeeding logs nothing", n)
	}
}
