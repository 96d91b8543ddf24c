package testsupport

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASLRecorder makes a kfake cluster accept any SASL mechanism and keeps
// the bytes of every SASLAuthenticate request. kfake implements only PLAIN
// and SCRAM, so OAUTHBEARER and AWS_MSK_IAM are checked on what the client
// sends.
type SASLRecorder struct {
	mu       sync.Mutex
	messages []string
}

// RecordSASL installs a recorder on cluster. Each authentication succeeds
// with reply and a session lifetime, after which franz-go authenticates
// the connection again (KIP-368). A zero lifetime sets none.
func RecordSASL(cluster *kfake.Cluster, reply string, lifetime time.Duration) *SASLRecorder {
	r := &SASLRecorder{}
	cluster.ControlKey(int16(kmsg.SASLHandshake), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		handshake := req.(*kmsg.SASLHandshakeRequest)
		resp := handshake.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = []string{handshake.Mechanism}
		return resp, nil, true
	})
	cluster.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		auth := req.(*kmsg.SASLAuthenticateRequest)
		r.mu.Lock()
		r.messages = append(r.messages, string(auth.SASLAuthBytes))
		r.mu.Unlock()
		resp := auth.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.SASLAuthBytes = []byte(reply)
		resp.SessionLifetimeMillis = lifetime.Milliseconds()
		return resp, nil, true
	})
	return r
}

// Messages returns the recorded messages in order.
func (r *SASLRecorder) Messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.messages)
}

// Containing returns the recorded messages that contain s.
func (r *SASLRecorder) Containing(s string) []string {
	var out []string
	for _, m := range r.Messages() {
		if strings.Contains(m, s) {
			out = append(out, m)
		}
	}
	return out
}
