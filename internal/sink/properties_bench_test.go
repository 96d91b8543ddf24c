package sink

import (
	"encoding/json"
	"testing"

	"github.com/posthog/posthog-go"
)

var propertiesOut posthog.Properties

// BenchmarkPropertiesMap measures the cost of posthog-go's property map
// alone, with no decoding. It puts the properties of a decoded bench
// record into a posthog.Properties from values already typed: three
// strings, five raw JSON values, two counts above 255, a count below 256
// and a float. Each string, slice, float and count above 255 is boxed in
// an interface, and the map sized for the enricher's 24 properties
// allocates too.
func BenchmarkPropertiesMap(b *testing.B) {
	strs := [3]string{"openai", "gpt-4o-mini", "tr-1"}
	raws := [5]json.RawMessage{[]byte(`[]`), []byte(`[]`), []byte(`"cv-1"`), []byte(`"on"`), []byte(`"org-1"`)}
	counts := [3]int64{912, 345, 200}
	latency := 1.5
	b.ReportAllocs()
	for b.Loop() {
		p := make(posthog.Properties, 24)
		p["$ai_provider"], p["$ai_model"], p["$ai_trace_id"] = strs[0], strs[1], strs[2]
		p["$ai_input"], p["$ai_output_choices"] = raws[0], raws[1]
		p["conversation_id"], p["feature"], p["org_id"] = raws[2], raws[3], raws[4]
		p["$ai_input_tokens"], p["$ai_output_tokens"], p["$ai_http_status"] = counts[0], counts[1], counts[2]
		p["$ai_latency"] = latency
		propertiesOut = p
	}
}
