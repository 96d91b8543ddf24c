package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/llm-enricher/enricher/internal/event"
)

// referenceDecode is V1.Decode built only on encoding/json: it unmarshals
// the whole record into callV1, copies every top-level "$..." member, and
// hashes the uuid with uuid.NewSHA1. It is the behavior that the fast path
// of V1.Decode must reproduce.
func referenceDecode(in Input) (*event.Event, error) {
	v := bytes.TrimSpace(in.Value)
	if len(v) == 0 || v[0] != '{' {
		return nil, ErrInvalid
	}
	var c callV1
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, err
	}
	name, ok := eventNames[c.Type]
	if !ok {
		return nil, ErrInvalid
	}
	timestamp, err := referenceTimestamp(c.Timestamp, in.Timestamp)
	if err != nil {
		return nil, err
	}
	if c.Groups != nil && !isObject(c.Groups) {
		return nil, ErrInvalid
	}

	id := c.ID
	if id == "" {
		id = "kafka:" + in.Source.String()
	}
	ev := &event.Event{
		UUID:       uuid.NewSHA1(event.Namespace, []byte(id)).String(),
		Name:       name,
		Timestamp:  timestamp,
		Properties: make(map[string]any),
		Source:     in.Source,
	}
	c.setProperties(ev.Properties)
	eachMember(v, 0, func(name, value []byte) {
		if k := decodeKey(name); strings.HasPrefix(k, "$") {
			ev.Properties[k] = json.RawMessage(value)
		}
	})
	for k, p := range c.Properties {
		ev.Properties[k] = p
	}
	ev.DistinctID = c.distinctID(ev)
	return ev, nil
}

// referenceTimestamp reads the timestamp field with encoding/json only, and
// falls back to the Kafka record time as V1.Decode does.
func referenceTimestamp(raw json.RawMessage, kafkaTime time.Time) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return kafkaTime.UTC(), nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return t.UTC(), err
	}
	var ms int64
	if err := json.Unmarshal(raw, &ms); err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms).UTC(), nil
}

var edgeSource = event.Source{Topic: "llm-calls", Partition: 1, Offset: 77}

// sameAsReference checks V1.Decode against referenceDecode, and the Fields
// that Decode returns against a full decode of each top-level member.
func sameAsReference(t *testing.T, doc []byte) {
	t.Helper()
	in := Input{Value: doc, Source: edgeSource, Timestamp: time.Unix(100, 0)}
	got, fields, gotErr := V1{}.Decode(in)
	want, wantErr := referenceDecode(in)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Decode(%q) error = %v, reference error = %v", doc, gotErr, wantErr)
	}
	if gotErr != nil {
		if !errors.Is(gotErr, ErrInvalid) {
			t.Fatalf("Decode(%q) error = %v, want it to wrap ErrInvalid", doc, gotErr)
		}
		return
	}
	if got.UUID != want.UUID {
		t.Errorf("Decode(%q) UUID = %s, reference %s", doc, got.UUID, want.UUID)
	}
	if got.Name != want.Name {
		t.Errorf("Decode(%q) Name = %s, reference %s", doc, got.Name, want.Name)
	}
	if got.DistinctID != want.DistinctID {
		t.Errorf("Decode(%q) DistinctID = %q, reference %q", doc, got.DistinctID, want.DistinctID)
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("Decode(%q) Timestamp = %v, reference %v", doc, got.Timestamp, want.Timestamp)
	}
	if !reflect.DeepEqual(got.Properties, want.Properties) {
		t.Errorf("Decode(%q) Properties =\n%v\nreference\n%v", doc, got.Properties, want.Properties)
	}

	v := bytes.TrimSpace(doc)
	eachMember(v, 0, func(name, _ []byte) {
		path := decodeKey(name)
		if strings.Contains(path, ".") {
			return // a path cannot name a member with a dot
		}
		gotValue, gotOK := fields.Field(path)
		wantValue, wantOK := fieldByDecode(v, path)
		if gotOK != wantOK || !reflect.DeepEqual(gotValue, wantValue) {
			t.Errorf("Decode(%q) Field(%q) = %#v, %v; full decode %#v, %v", doc, path, gotValue, gotOK, wantValue, wantOK)
		}
	})
}

// edgeDocs are records at the limits of the fast path of V1.Decode.
var edgeDocs = map[string]string{
	"all string fields and 12 properties": allStringsRecord(12),
	"all string fields and 30 properties": allStringsRecord(30),
	"40 top-level members":                manyMembersRecord(40),
	"16 top-level members":                manyMembersRecord(16),
	"17 top-level members":                manyMembersRecord(17),
	"33 top-level members":                manyMembersRecord(33),
	"duplicate string field":              `{"model":"a","id":"x","model":"b"}`,
	"duplicate properties":                `{"properties":{"a":1},"model":"m","properties":{"b":2}}`,
	"duplicate property name":             `{"properties":{"a":1,"b":2,"a":3}}`,
	"properties null":                     `{"id":"x","properties":null}`,
	"properties null then object":         `{"properties":null,"properties":{"a":1}}`,
	"properties empty":                    `{"id":"x","properties":{}}`,
	"empty strings":                       `{"id":"","distinct_id":"","trace_id":"","model":"","properties":{"":""}}`,
	"empty key":                           `{"":1,"$":2,"id":"x"}`,
	"invalid UTF-8 value":                 "{\"id\":\"a\xffb\",\"model\":\"\xc3\"}",
	"invalid UTF-8 key":                   "{\"mod\xffel\":\"m\",\"$ai_x\xfe\":1,\"id\":\"x\"}",
	"invalid UTF-8 property name":         "{\"properties\":{\"t\xffier\":\"gold\"}}",
	"escaped dollar key":                  `{"\u0024ai_trace_id":"t","id":"x"}`,
	"escaped dollar later":                `{"id":"x","a":1,"\u0024set":{"p":1}}`,
	"escaped plain key":                   `{"\u006dodel":"m"}`,
	"escaped key in properties":           `{"properties":{"\u0074ier":"gold","tier":"silver"}}`,
	"keys differing by case":              `{"model":"a","Model":"b","MODEL":"c"}`,
	"case-folded key only":                `{"Distinct_ID":"u","TRACE_ID":"t"}`,
	"case-folded raw field":               `{"input":[1],"INPUT":[2]}`,
	"counts as strings":                   `{"input_tokens":"12","output_tokens":"-3","reasoning_tokens":"0"}`,
	"counts as floats":                    `{"input_tokens":12.0,"output_tokens":1e2,"http_status":2.00e2}`,
	"count at int64 limit":                `{"input_tokens":9223372036854775807}`,
	"count past int64 limit":              `{"input_tokens":9223372036854775808}`,
	"negative zero":                       `{"input_tokens":-0,"latency":-0}`,
	"null pointers":                       `{"input_tokens":null,"latency":null,"is_error":null,"privacy_mode":null}`,
	"is_error false":                      `{"is_error":false,"privacy_mode":false}`,
	"latency as string":                   `{"latency":"1.5"}`,
	"huge id":                             `{"id":"` + strings.Repeat("c", 5000) + `"}`,
	"id of 112 bytes":                     `{"id":"` + strings.Repeat("i", 112) + `"}`,
	"id of 113 bytes":                     `{"id":"` + strings.Repeat("i", 113) + `"}`,
	"timestamp with escape":               `{"timestamp":"2026-05-01T10:00:00\u005a"}`,
	"timestamp invalid UTF-8":             "{\"timestamp\":\"2026-05-01T10:00:00Z\xff\"}",
	"timestamp epoch":                     `{"timestamp":1777629600123}`,
	"timestamp float":                     `{"timestamp":1.5}`,
	"dollar overrides field":              `{"model":"m","$ai_model":"raw","properties":{"$ai_model":"custom"}}`,
	"dollar overrides distinct":           `{"$process_person_profile":true}`,
	"whitespace everywhere":               " \n{ \"id\" : \"x\" ,\t\"properties\" : { \"a\" : [ 1 , 2 ] } , \"$x\" : { } }\r\n",
	"nested dollar is not top-level":      `{"input":{"$x":1},"properties":{"k":{"$y":2}}}`,
	"error string with escape":            `{"error":"a\nb"}`,
	"groups null":                         `{"groups":null}`,
	"groups array":                        `{"groups":[1]}`,
	"type span":                           `{"type":"span","trace_id":"t"}`,
	"type unknown":                        `{"type":"Span"}`,
	"nesting at the depth limit":          `{"input":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
	"nesting past the depth limit":        `{"input":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
}

// allStringsRecord returns a record with every string field of callV1 and
// n custom properties, more than the string arena has room for.
func allStringsRecord(n int) string {
	var b strings.Builder
	b.WriteString(`{"id":"id-1","distinct_id":"u-1","type":"generation","provider":"p","model":"m",` +
		`"base_url":"b","stop_reason":"s","trace_id":"t","span_id":"sp","parent_id":"pa",` +
		`"span_name":"sn","session_id":"se","ai_session_id":"ai","properties":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"prop_%d":"value-%d"`, i, i)
	}
	b.WriteString(`}}`)
	return b.String()
}

// manyMembersRecord returns a record with n top-level members, more than
// the inline index buffer of Fields, with known, unknown and "$" names.
func manyMembersRecord(n int) string {
	var b strings.Builder
	b.WriteString(`{"id":"x","model":"m"`)
	for i := range n - 2 {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `,"extra_%d":{"n":%d}`, i, i)
		case 1:
			fmt.Fprintf(&b, `,"$custom_%d":"v%d"`, i, i)
		default:
			fmt.Fprintf(&b, `,"list_%d":[%d]`, i, i)
		}
	}
	b.WriteString(`}`)
	return b.String()
}

func TestDecodeEdgeCasesMatchReference(t *testing.T) {
	for name, doc := range edgeDocs {
		t.Run(name, func(t *testing.T) {
			sameAsReference(t, []byte(doc))
		})
	}
}

func TestUnmarshalEdgeCasesMatchEncodingJSON(t *testing.T) {
	for name, doc := range edgeDocs {
		t.Run(name, func(t *testing.T) {
			sameAsUnmarshal(t, []byte(doc))
		})
	}
}

// TestUnmarshalUnicodeFoldedKeys covers keys that encoding/json matches to
// a field by Unicode case folding although their length in bytes differs
// from the field name: "ſ" (U+017F) folds to "s" and the Kelvin sign
// (U+212A) folds to "k".
func TestUnmarshalUnicodeFoldedKeys(t *testing.T) {
	docs := map[string]string{
		"long s in span_id":      `{"ſpan_id":"x"}`,
		"long s in session_id":   `{"model":"m","ſession_id":"s"}`,
		"long s in distinct_id":  `{"id":"x","diſtinct_id":"u-1"}`,
		"Kelvin sign in tokens":  "{\"input_to\u212Aens\":5}",
		"folded after the field": `{"span_id":"a","ſpan_id":"b"}`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			sameAsReference(t, []byte(doc))
			sameAsUnmarshal(t, []byte(doc))
		})
	}
}

func FuzzDecodeMatchesReference(f *testing.F) {
	for _, doc := range edgeDocs {
		f.Add([]byte(doc))
	}
	f.Add([]byte(recordR))
	f.Fuzz(func(t *testing.T, doc []byte) {
		sameAsReference(t, doc)
	})
}
