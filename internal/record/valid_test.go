package record

import (
	"encoding/json"
	"testing"
)

var validCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e-3`, `true`, `null`, ` {"a" : [1, "x\"y", {"b":null}] } `,
	`"\u00e9\n\t\\\/"`, "\"caf\xc3\xa9 \xff\"", `"abcdefghijklmnopqrstuvwxyz0123456789 \"quoted\" text"`,
	`{`, `}`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `01`, `1.`, `1e`, `-`, `.5`, `tru`, `nul`, `"abc`,
	"\"a\x01b\"", `"\x"`, `"\u12G4"`, `"\u12"`, `{"a":1}x`, `[1 2]`, `{1:2}`, ``, ` `,
	`"0123456789abcdef\"0123456789abcdef"`, "\"0123456789abcde\x1f\"",
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, doc := range validCases {
		if got, want := valid([]byte(doc)), json.Valid([]byte(doc)); got != want {
			t.Errorf("valid(%q) = %v, want %v", doc, got, want)
		}
	}
}

func TestValidNestingLimit(t *testing.T) {
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		doc := make([]byte, 0, 2*depth)
		for range depth {
			doc = append(doc, '[')
		}
		for range depth {
			doc = append(doc, ']')
		}
		if got, want := valid(doc), json.Valid(doc); got != want {
			t.Errorf("valid(%d nested arrays) = %v, want %v", depth, got, want)
		}
	}
}

func FuzzValidMatchesEncodingJSON(f *testing.F) {
	for _, doc := range validCases {
		f.Add([]byte(doc))
	}
	f.Add([]byte(recordR))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got, want := valid(doc), json.Valid(doc); got != want {
			t.Fatalf("valid(%q) = %v, want %v", doc, got, want)
		}
	})
}
