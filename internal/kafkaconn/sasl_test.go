package kafkaconn_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/kafkaconn"
	"github.com/llm-enricher/enricher/internal/kafkaconn/certtest"
	"github.com/llm-enricher/enricher/internal/testsupport"
)

// startRecordingCluster starts kfake with SASL handled by a recorder
// that responds to each authentication with reply.
func startRecordingCluster(t *testing.T, reply string) (string, *testsupport.SASLRecorder) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()[0], testsupport.RecordSASL(cluster, reply, 0)
}

// pingWith creates a client from opts, pings the broker and closes the
// client, so that each call authenticates on a new connection.
func pingWith(t *testing.T, opts []kgo.Opt, addr string) {
	t.Helper()
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

func TestOAuthBearerRereadsToken(t *testing.T) {
	addr, recorder := startRecordingCluster(t, "")
	tokenFile := filepath.Join(t.TempDir(), "token")
	certtest.WriteFile(t, tokenFile, []byte("token-one\n"))

	cfg := kafkaconn.Config{SASLMechanism: "oauthbearer", SASLOAuthTokenFile: tokenFile}
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatalf("Opts: %v", err)
	}
	pingWith(t, opts, addr)
	certtest.WriteFile(t, tokenFile, []byte("token-two\n"))
	pingWith(t, opts, addr)

	seen := recorder.Messages()
	if len(seen) < 2 {
		t.Fatalf("broker saw %d authentications, want at least 2", len(seen))
	}
	if !strings.Contains(seen[0], "auth=Bearer token-one\x01") {
		t.Errorf("first authentication %q does not carry token-one", seen[0])
	}
	if last := seen[len(seen)-1]; !strings.Contains(last, "auth=Bearer token-two\x01") {
		t.Errorf("authentication after rotation %q does not carry token-two", last)
	}
}

func TestOAuthBearerEmptyToken(t *testing.T) {
	addr, _ := startRecordingCluster(t, "")
	tokenFile := filepath.Join(t.TempDir(), "token")
	certtest.WriteFile(t, tokenFile, []byte("\n"))

	cfg := kafkaconn.Config{SASLMechanism: kafkaconn.MechanismOAuthBearer, SASLOAuthTokenFile: tokenFile}
	err := ping(newClient(t, cfg, addr))
	if err == nil {
		t.Fatal("ping succeeded with an empty token file")
	}
	assertContains(t, err, "ENRICHER_KAFKA_SASL_OAUTH_TOKEN_FILE")
	assertContains(t, err, "is empty")
}

func TestAWSMSKIAMSignsWithEnvironmentCredentials(t *testing.T) {
	// The credential chain must find the static keys in the environment
	// and stop there: no shared files, and no instance metadata lookup.
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTESTENRICHER")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-key-must-not-leak")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	addr, recorder := startRecordingCluster(t, `{"version":"2020_10_22","request-id":"test"}`)
	cfg := kafkaconn.Config{SASLMechanism: kafkaconn.MechanismAWSMSKIAM, SASLAWSRegion: "eu-west-1"}
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatalf("Opts: %v", err)
	}
	pingWith(t, opts, addr)

	seen := recorder.Messages()
	if len(seen) == 0 {
		t.Fatal("broker saw no authentication")
	}
	message := seen[0]
	for _, want := range []string{
		`"action":"kafka-cluster:Connect"`,
		"AKIDTESTENRICHER/",
		"/eu-west-1/kafka-cluster/aws4_request",
		`"x-amz-signature":"`,
	} {
		if !strings.Contains(message, want) {
			t.Errorf("authentication %q does not contain %q", message, want)
		}
	}
	if strings.Contains(message, "secret-key-must-not-leak") {
		t.Error("authentication message contains the AWS secret key")
	}
}
