package record

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// fieldByDecode is the reference for Field: decode the whole document
// into generic values and walk the path.
func fieldByDecode(doc []byte, path string) (any, bool) {
	var cur any
	if json.Unmarshal(doc, &cur) != nil {
		return nil, false
	}
	for seg := range strings.SplitSeq(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, cur != nil
}

const trickyDoc = ` {
  "a" : { "b\"c" : "x\\", "d": [ 1 , {"e":"say \"hi\"\n"}, [true, null] ] },
  "\u0070lan": "pro",
  "dup": 1, "dup": {"k": "last"},
  "empty": {}, "list": [], "n": null,
  "num": -1.5e3, "s": "a\\\"b}]"
}`

func TestFieldMatchesFullDecode(t *testing.T) {
	paths := []string{
		"a", `a.b"c`, "a.d", "a.d.0", "a.d.1.e", "a.d.2.0", "a.d.2.1", "a.d.3",
		"a.d.-1", "a.d.x", "plan", "dup", "dup.k", "empty", "empty.x", "list",
		"list.0", "n", "num", "s", "missing", "s.x", "a.b", "",
	}
	f := NewFields([]byte(trickyDoc))
	for _, path := range paths {
		got, ok := f.Field(path)
		want, wantOK := fieldByDecode([]byte(trickyDoc), path)
		if ok != wantOK || !reflect.DeepEqual(got, want) {
			t.Errorf("Field(%q) = %#v, %v; want %#v, %v", path, got, ok, want, wantOK)
		}
	}
}

func FuzzFieldMatchesFullDecode(f *testing.F) {
	f.Add([]byte(trickyDoc), "a.d.1.e")
	f.Add([]byte(recordR), "properties.conversation_id")
	f.Add([]byte(`{"x":"\\\\","y":[{"z":"\""}]}`), "y.0.z")
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		if !json.Valid(doc) {
			return
		}
		got, ok := NewFields(doc).Field(path)
		want, wantOK := fieldByDecode(doc, path)
		if ok != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("Field(%q) on %s = %#v, %v; want %#v, %v", path, doc, got, ok, want, wantOK)
		}
		// Decode indexes the members while it reads the record's fields.
		if _, decoded, err := (V1{}).Decode(Input{Value: doc}); err == nil {
			got, ok := decoded.Field(path)
			if ok != wantOK || !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded Field(%q) on %s = %#v, %v; want %#v, %v", path, doc, got, ok, want, wantOK)
			}
		}
	})
}
