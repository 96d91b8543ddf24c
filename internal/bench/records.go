package bench

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Keys of the record set. Records pick a user from hotUsers, except one
// in missEvery, which has a user of its own: a lookup keyed by user then
// misses on that record and hits on the others once the cache is warm.
const (
	hotUsers  = 1000
	missEvery = 20
	orgs      = 50
)

// sentPlaceholder is the value of the bench_sent_us property in a template
// record: a string of 16 digits that a latency run overwrites with the
// produce time in Unix microseconds, padded with zeros.
const sentPlaceholder = "0000000000000000"

// SentProperty is the record property that carries the produce time of a
// latency run's record, in Unix microseconds.
const SentProperty = "bench_sent_us"

// sentMarker precedes the produce time in a record and in an event.
var sentMarker = []byte(`"` + SentProperty + `":"`)

var words = strings.Fields(`the a model prompt answer token user request
	response summary table customer invoice order shipment refund policy
	account password reset error timeout retry cache latency query search
	result document paragraph section chapter title author date price total
	quantity discount region country city street number email phone support
	ticket priority status pending resolved closed escalated agent tool call
	function argument value schema field type string integer boolean array
	object null true false first second third last next previous because
	however therefore although while when where which what who how why`)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// llmCall is the version 1 record as the bench writes it.
type llmCall struct {
	ID            string         `json:"id"`
	Timestamp     string         `json:"timestamp"`
	DistinctID    string         `json:"distinct_id"`
	Provider      string         `json:"provider"`
	Model         string         `json:"model"`
	Input         []message      `json:"input"`
	OutputChoices []message      `json:"output_choices"`
	InputTokens   int            `json:"input_tokens"`
	OutputTokens  int            `json:"output_tokens"`
	LatencyMs     int            `json:"latency_ms"`
	HTTPStatus    int            `json:"http_status"`
	TraceID       string         `json:"trace_id"`
	Properties    map[string]any `json:"properties"`
}

// Generator makes LLM call records of about 2 KB: a system prompt, a user
// prompt and an answer of English-like text with quotes and newlines, token
// counts and ids. The same seed gives the same records.
type Generator struct {
	rng *rand.Rand
}

// NewGenerator returns a generator seeded with seed.
func NewGenerator(seed uint64) *Generator {
	return &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Record returns record n as JSON. With sent, the record carries the
// bench_sent_us placeholder that StampSent fills in.
func (g *Generator) Record(n int, sent bool) []byte {
	user := "u-" + strconv.Itoa(g.rng.IntN(hotUsers))
	if n%missEvery == 0 {
		user = "new-" + strconv.Itoa(n)
	}
	props := map[string]any{
		"conversation_id": "cv-" + strconv.Itoa(g.rng.IntN(100000)),
		"org_id":          "org-" + strconv.Itoa(g.rng.IntN(orgs)),
		"feature":         "support-chat",
	}
	if sent {
		props[SentProperty] = sentPlaceholder
	}
	c := llmCall{
		ID:         "call-" + strconv.Itoa(n) + "-" + strconv.FormatUint(g.rng.Uint64(), 36),
		Timestamp:  "2026-05-01T10:00:00." + strconv.Itoa(100+n%900) + "Z",
		DistinctID: user,
		Provider:   "openai",
		Model:      "gpt-4o-mini",
		Input: []message{
			{Role: "system", Content: g.text(250)},
			{Role: "user", Content: g.text(650)},
		},
		OutputChoices: []message{{Role: "assistant", Content: g.text(700)}},
		InputTokens:   200 + g.rng.IntN(400),
		OutputTokens:  100 + g.rng.IntN(300),
		LatencyMs:     300 + g.rng.IntN(3000),
		HTTPStatus:    200,
		TraceID:       "tr-" + strconv.FormatUint(g.rng.Uint64(), 36),
		Properties:    props,
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // every field is a plain value
	}
	return b
}

// text returns about n bytes of sentences, some quoted, some ending a line.
func (g *Generator) text(n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		quoted := g.rng.IntN(6) == 0
		if quoted {
			b.WriteByte('"')
		}
		length := 4 + g.rng.IntN(10)
		for i := range length {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[g.rng.IntN(len(words))])
		}
		if quoted {
			b.WriteByte('"')
		}
		if g.rng.IntN(4) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteString(". ")
		}
	}
	return b.String()
}

// StampSent returns a copy of rec with the bench_sent_us placeholder
// replaced by us, which must have at most 16 digits.
func StampSent(rec []byte, us int64) []byte {
	out := append([]byte(nil), rec...)
	i := bytes.Index(out, sentMarker)
	if i < 0 {
		return out
	}
	digits := strconv.FormatInt(us, 10)
	at := i + len(sentMarker) + len(sentPlaceholder) - len(digits)
	copy(out[at:], digits)
	return out
}
