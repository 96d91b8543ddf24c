package event

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestIDIsUUIDv5OfTheCallID(t *testing.T) {
	for _, name := range []string{"", "a", "call-0001", "chatcmpl-9xYz", strings.Repeat("long id ", 40), "ünïcode"} {
		want := uuid.NewSHA1(Namespace, []byte(name)).String()
		if name == "" {
			want = uuid.NewSHA1(Namespace, []byte("kafka:t/3/42")).String()
		}
		got := ID(name, Source{Topic: "t", Partition: 3, Offset: 42})
		if got != want {
			t.Errorf("ID(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestIDIsStable(t *testing.T) {
	// The uuid of a call must never change between releases: PostHog
	// deduplicates a replayed event by it.
	if got, want := ID("call-1", Source{}), "5a529480-7749-59d9-8742-c95e5c5bc4c9"; got != want {
		t.Errorf("ID(call-1) = %s, want %s", got, want)
	}
}
