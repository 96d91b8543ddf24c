package record_test

import (
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/bench"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/record"
)

// BenchmarkDecode decodes the records of the end-to-end bench: about 2 KB
// of prompt and answer text with quotes and newlines, token counts, ids
// and custom properties.
func BenchmarkDecode(b *testing.B) {
	g := bench.NewGenerator(1)
	recs := make([][]byte, 64)
	size := 0
	for i := range recs {
		recs[i] = g.Record(i, false)
		size += len(recs[i])
	}
	b.SetBytes(int64(size / len(recs)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		in := record.Input{Value: recs[i%len(recs)], Source: event.Source{Topic: "t", Offset: int64(i)}, Timestamp: time.Now()}
		if _, _, err := (record.V1{}).Decode(in); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
