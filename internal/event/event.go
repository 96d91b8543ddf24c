// Package event defines the PostHog event that the enricher builds from one
// source record, and the identity rules that keep a replayed record
// idempotent.
package event

import (
	"crypto/sha1"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Event names of PostHog LLM analytics.
const (
	Generation = "$ai_generation"
	Embedding  = "$ai_embedding"
	Span       = "$ai_span"
	Trace      = "$ai_trace"
)

// Properties the enricher itself sets on an event.
const (
	// PropTruncated is true when text or media was shortened or removed so
	// that the event fits the SDK's size limit.
	PropTruncated = "enricher_truncated"
	// PropPartial is true when at least one lookup failed or timed out, so
	// that one or more configured properties are missing.
	PropPartial = "enricher_partially_enriched"
)

// Namespace is the UUIDv5 namespace of event uuids. It is fixed forever:
// changing it would give every replayed record a new identity.
var Namespace = uuid.MustParse("6c1c7a5e-3f0b-4d7e-9a52-5d1f0e8b2a41")

// Event is one PostHog capture event, in the shape of the /batch/ API.
type Event struct {
	// UUID is the event uuid, derived from the call id (see ID).
	UUID string
	// Name is the event name, such as "$ai_generation".
	Name string
	// DistinctID is the person the event belongs to.
	DistinctID string
	// Timestamp is when the call happened, taken from the record.
	Timestamp time.Time
	// Properties are the event properties, "$groups" included.
	Properties map[string]any
	// Source is the Kafka record the event was built from.
	Source Source
}

// Source locates a Kafka record.
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// String formats the source as topic/partition/offset.
func (s Source) String() string {
	return s.Topic + "/" + strconv.Itoa(int(s.Partition)) + "/" + strconv.FormatInt(s.Offset, 10)
}

// ID returns the event uuid for a call: the UUIDv5 of Namespace and the call
// id, or, for a record without an id, of "kafka:" and the record's
// topic/partition/offset.
func ID(callID string, src Source) string {
	name := callID
	if name == "" {
		name = "kafka:" + src.String()
	}
	return uuidV5(name)
}

// uuidV5 is uuid.NewSHA1(Namespace, name) as a string. It hashes on the
// stack when the name is short, as call ids are, which saves three of the
// four allocations of uuid.NewSHA1 on every record.
func uuidV5(name string) string {
	var buf [128]byte
	in := append(append(buf[:0], Namespace[:]...), name...)
	sum := sha1.Sum(in)
	var u uuid.UUID
	copy(u[:], sum[:])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	return u.String()
}
