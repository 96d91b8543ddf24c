package metrics

import (
	"strings"
	"testing"
	"testing/iotest"
)

func TestCountBatch(t *testing.T) {
	cases := map[string]struct {
		body string
		want int
		ok   bool
	}{
		"posthog-go body":  {`{"api_key":"phc_x","historical_migration":false,"batch":[{"uuid":"a","properties":{"batch":[1,2,3]}},{"uuid":"b"}]}`, 2, true},
		"batch first":      {`{"batch":[{"a":1}],"api_key":"k"}`, 1, true},
		"empty batch":      {`{"api_key":"k","batch":[]}`, 0, true},
		"spaces":           {"{ \"batch\" : [ {} , {} , {} ] }", 3, true},
		"commas in text":   {`{"batch":[{"t":"a, b, c"},{"t":"x\",y"}]}`, 2, true},
		"brackets in text": {`{"batch":[{"t":"]}{["},{"t":"\\"}]}`, 2, true},
		"backslash runs":   {`{"batch":[{"t":"\\\\\\\"],"},{"t":"\\\\"},{"t":"a\\\\\\\\"}]}`, 3, true},
		"key as a value":   {`{"mode":"batch","other":[1,2],"batch":[{}]}`, 1, true},
		"escaped key":      {`{"bat\\ch":[1,2],"b\"atch":[3],"batch":[4,5,6]}`, 3, true},
		"literals":         {`{"batch":[1,2.5,-3,true,null]}`, 5, true},
		"no batch":         {`{"api_key":"k"}`, 0, false},
		"truncated":        {`{"batch":[{},{`, 1, false},
		"not json":         {`hello`, 0, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := countBatch(strings.NewReader(c.body))
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v", ok, c.ok)
			}
			if ok && got != c.want {
				t.Errorf("count = %d, want %d", got, c.want)
			}
			// One byte per read puts every state across a read boundary.
			got, ok = countBatch(iotest.OneByteReader(strings.NewReader(c.body)))
			if ok != c.ok || (ok && got != c.want) {
				t.Errorf("byte by byte: count = %d (ok %v), want %d (ok %v)", got, ok, c.want, c.ok)
			}
		})
	}
}
