package record

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// sameAsUnmarshal checks callV1.unmarshal against json.Unmarshal.
func sameAsUnmarshal(t *testing.T, doc []byte) {
	t.Helper()
	var got, want callV1
	gotErr := got.unmarshal(doc, NewFields(doc))
	wantErr := json.Unmarshal(doc, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("unmarshal(%q) error = %v, json.Unmarshal error = %v", doc, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(exported(got), want) {
		t.Fatalf("unmarshal(%q) = %+v, json.Unmarshal = %+v", doc, exported(got), want)
	}
}

// exported returns c as json.Unmarshal would fill it: the custom
// properties that the fast path keeps in order become the map, and the
// fields that json.Unmarshal leaves alone are cleared. The copy's pointer
// fields still point into c, which must stay as it is.
func exported(c callV1) callV1 {
	if c.props != nil {
		c.Properties = make(map[string]json.RawMessage, len(c.props))
		for _, p := range c.props {
			c.Properties[p.name] = p.value
		}
	}
	c.props, c.dollar, c.strings = nil, false, stringArena{}
	c.slots = callV1{}.slots
	return c
}

func TestUnmarshalMatchesEncodingJSON(t *testing.T) {
	docs := []string{
		recordR,
		`{"input":null,"tools":[{"type":"function"}],"model_parameters":{"temperature":0.2},"output_choices":"x"}`,
		`{"input":[1],"input":[2],"model":"a","model":"b"}`,
		`{"Model":"m","DISTINCT_ID":"u","input_tokens":"12","latency":1.5}`,
		`{"input_tokens":"abc","input":[1]}`,
		`{"id":5}`,
		`{"input":[1}`,
		`{}`,
	}
	for _, doc := range docs {
		sameAsUnmarshal(t, []byte(doc))
	}
}

func FuzzUnmarshalMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(recordR))
	f.Add([]byte(`{"input":[1],"input":[2],"properties":{"a":1},"timestamp":5}`))
	f.Add([]byte(`{"id":"c","timestamp":"2026-05-01T10:00:00Z","distinct_id":"u","type":"span","provider":"p","model":"m","base_url":"b","input":[],"output_choices":[],"model_parameters":{},"tools":[],"input_tokens":1,"output_tokens":"2","cache_read_input_tokens":3.0,"cache_creation_input_tokens":null,"reasoning_tokens":4,"latency":0.5,"latency_ms":500,"time_to_first_token":0.1,"http_status":200,"is_error":false,"error":"e","stop_reason":"s","trace_id":"t","span_id":"s","parent_id":"p","span_name":"n","session_id":"x","ai_session_id":"y","properties":{"k":"v"},"groups":{"g":"h"},"privacy_mode":true}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var top map[string]json.RawMessage
		if json.Unmarshal(doc, &top) != nil {
			return
		}
		for k := range top {
			for _, name := range []string{"input", "output_choices", "tools", "model_parameters"} {
				if k != name && strings.EqualFold(k, name) {
					return // documented difference
				}
			}
		}
		sameAsUnmarshal(t, doc)
	})
}
