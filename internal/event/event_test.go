package event

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestIDIsStable(t *testing.T) {
	// The uuid of a call must never change between releases: PostHog
	// deduplicates a replayed event by it.
	if got, want := ID("call-1", Source{}), "5a529480-7749-59d9-8742-c95e5c5bc4c9"; got != want {
		t.Errorf("ID(call-1) = %s, want %s", got, want)
	}
}

// TestIDEveryLength covers call ids of 1 to 300 bytes, which cross the
// 128-byte stack buffer of uuidV5 (16 bytes of namespace and 112 of name).
func TestIDEveryLength(t *testing.T) {
	for n := 1; n <= 300; n++ {
		name := strings.Repeat("x", n-1) + string(rune('a'+n%26))
		want := uuid.NewSHA1(Namespace, []byte(name)).String()
		if got := ID(name, Source{}); got != want {
			t.Errorf("ID of a %d-byte name = %s, want %s", n, got, want)
		}
	}
}

func TestIDOddNames(t *testing.T) {
	names := []string{
		"\xff",
		"\x00",
		"a\x00b",
		"\xc3",
		strings.Repeat("\xfe\xff", 100),
		strings.Repeat("ü", 56),
		strings.Repeat("€", 40),
		strings.Repeat("z", 1<<20),
	}
	for _, name := range names {
		want := uuid.NewSHA1(Namespace, []byte(name)).String()
		if got := ID(name, Source{}); got != want {
			t.Errorf("ID(%.40q) = %s, want %s", name, got, want)
		}
	}
}

func TestIDFromSource(t *testing.T) {
	src := Source{Topic: strings.Repeat("t", 200), Partition: -1, Offset: -9223372036854775808}
	want := uuid.NewSHA1(Namespace, []byte("kafka:"+src.String())).String()
	if got := ID("", src); got != want {
		t.Errorf("ID of source %s = %s, want %s", src, got, want)
	}
}

func FuzzIDMatchesNewSHA1(f *testing.F) {
	f.Add("call-1")
	f.Add(strings.Repeat("i", 112))
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, name string) {
		if name == "" {
			return // ID hashes the source instead
		}
		want := uuid.NewSHA1(Namespace, []byte(name)).String()
		if got := ID(name, Source{}); got != want {
			t.Fatalf("ID(%q) = %s, want %s", name, got, want)
		}
	})
}
