package tlsreload_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/kafkaconn/certtest"
	"github.com/llm-enricher/enricher/internal/kafkaconn/tlsreload"
)

func TestRootsReloadOnChange(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certtest.WriteFile(t, caFile, certtest.NewCA(t, "first").PEM)
	roots, err := tlsreload.NewRoots(caFile, false, 0)
	if err != nil {
		t.Fatalf("NewRoots: %v", err)
	}

	if _, generation := roots.Pool(); generation != 0 {
		t.Errorf("generation before any change = %d, want 0", generation)
	}
	certtest.WriteFile(t, caFile, certtest.NewCA(t, "second").PEM)
	if _, generation := roots.Pool(); generation != 1 {
		t.Errorf("generation after a change = %d, want 1", generation)
	}
	certtest.WriteFile(t, caFile, []byte("half written"))
	if pool, generation := roots.Pool(); generation != 1 || pool == nil {
		t.Errorf("a broken file replaced the pool: generation %d", generation)
	}
}

func TestRootsWaitForInterval(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	certtest.WriteFile(t, caFile, certtest.NewCA(t, "first").PEM)
	roots, err := tlsreload.NewRoots(caFile, false, time.Hour)
	if err != nil {
		t.Fatalf("NewRoots: %v", err)
	}
	certtest.WriteFile(t, caFile, certtest.NewCA(t, "second").PEM)
	if _, generation := roots.Pool(); generation != 0 {
		t.Errorf("generation within the interval = %d, want 0", generation)
	}
}

func TestKeyPairRejectsMismatch(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	now := time.Now()
	first := ca.IssueClient(t, "a", now.Add(-time.Hour), now.Add(time.Hour))
	second := ca.IssueClient(t, "b", now.Add(-time.Hour), now.Add(time.Hour))
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	keyFile := filepath.Join(dir, "key.pem")
	certtest.WriteFile(t, certFile, first.CertPEM)
	certtest.WriteFile(t, keyFile, second.KeyPEM)
	if _, err := tlsreload.NewKeyPair(certFile, keyFile, 0); err == nil {
		t.Error("NewKeyPair accepted a certificate with another certificate's key")
	}
}
