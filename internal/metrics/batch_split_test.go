package metrics

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
)

// splitReader returns its input in reads of the given sizes in turn, so
// that a test chooses where every read boundary falls.
type splitReader struct {
	data  []byte
	sizes []int
	next  int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := r.sizes[r.next%len(r.sizes)]
	r.next++
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// batchLength returns the length of the top-level "batch" array of body
// as encoding/json decodes it, and false when body is not a JSON object
// with such an array.
func batchLength(body []byte) (int, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return 0, false
	}
	var batch []json.RawMessage
	if raw, ok := top["batch"]; !ok || json.Unmarshal(raw, &batch) != nil || batch == nil {
		return 0, false
	}
	return len(batch), true
}

// checkEverySplit counts body with one read boundary at each position,
// and with reads of 1 to 9 bytes.
func checkEverySplit(t *testing.T, body string) {
	t.Helper()
	want, wantOK := batchLength([]byte(body))
	check := func(how string, r io.Reader) {
		t.Helper()
		got, ok := countBatch(r)
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("countBatch(%q) with %s = %d, %v; encoding/json: %d, %v", body, how, got, ok, want, wantOK)
		}
	}
	for at := 1; at <= len(body); at++ {
		check("a boundary at byte "+strconv.Itoa(at), &splitReader{data: []byte(body), sizes: []int{at, len(body)}})
	}
	for size := 1; size <= 9; size++ {
		check("reads of "+strconv.Itoa(size)+" bytes", &splitReader{data: []byte(body), sizes: []int{size}})
	}
}

func TestCountBatchEverySplit(t *testing.T) {
	bodies := map[string]string{
		"posthog-go body": `{"api_key":"phc_x","historical_migration":false,"batch":[{"uuid":"a","event":"$ai_generation",` +
			`"properties":{"$ai_input":"say \"hi\\\"","batch":[1,2]}},{"uuid":"b","properties":{"t":"\\\\"}}]}`,
		"backslash runs of 1 to 8": `{"batch":[{"a":"\\"},{"a":"\\\\"},{"a":"\\\\\\"},{"a":"\\\\\\\\"},` +
			`{"a":"\\\\\\\\\\"},{"a":"\\\\\\\\\\\\"},{"a":"\\\\\\\\\\\\\\"},{"a":"\\\\\\\\\\\\\\\\"}]}`,
		"escaped quotes then brackets": `{"batch":["\"]","\\\"],[","x\\\\","\\\"\\\"",{"k\"":"]"}]}`,
		"escaped key of the object":    `{"api\"key":"x\\","ba\\tch":[1],"batch":[{"\\":"\\\\\""}]}`,
		"strings as elements":          `{"batch":["a","b","c,d"]}`,
		"nested batches":               `{"batch":[[["batch",[1,2]]],{"batch":[3]}]}`,
		"unicode escapes":              `{"batch":[{"t":"\u0022\u005c"},"\ud83d\ude00"]}`,
		"empty strings":                `{"":"","batch":["",""],"z":""}`,
		"value before key":             `{"mode":"batch","batch":[{},{},{},{}]}`,
		"whitespace":                   "{\n\t\"batch\"\r\n:\n[\n{ }\n,\n{ }\n]\n}\n",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			checkEverySplit(t, body)
		})
	}
}

// TestCountBatchLongString reads a 120 KB string in reads of 1 to 9 bytes
// alternating with reads of 32 KiB, so that read boundaries fall inside
// the long jumps between quotes. A boundary at every byte would be too slow.
func TestCountBatchLongString(t *testing.T) {
	body := `{"batch":[{"t":"` + strings.Repeat(`ab\"c\\`, 20000) + `"},{}]}`
	for size := 1; size <= 9; size++ {
		got, ok := countBatch(&splitReader{data: []byte(body), sizes: []int{size, 32 << 10}})
		if !ok {
			t.Fatalf("reads of %d and 32768 bytes: ok = false, want true", size)
		}
		if got != 2 {
			t.Errorf("reads of %d and 32768 bytes: count = %d, want 2", size, got)
		}
	}
}

// TestCountBatchJSONSemantics covers valid JSON that posthog-go does not
// write: duplicate "batch" keys, a key spelled with an escape, a batch that
// is not an array, and an array at the top level.
func TestCountBatchJSONSemantics(t *testing.T) {
	bodies := map[string]string{
		"duplicate batch, last empty": `{"batch":[1,2],"batch":[]}`,
		"key spelled with an escape":  `{"b\u0061tch":[1,2,3]}`,
		"top-level array":             `["batch",[1,2]]`,
		"duplicate batch, last null":  `{"batch":[1,2],"batch":null}`,
		"duplicate batch, last kept":  `{"batch":"x","batch":[1]}`,
		"batch is a string":           `{"batch":"[1,2]"}`,
		"escaped key, escaped value":  `{"\u0062atch":[{"t":"\u0022"}],"k":"\\"}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			checkEverySplit(t, body)
		})
	}
}

func FuzzCountBatchMatchesDecode(f *testing.F) {
	f.Add([]byte(`{"api_key":"k","batch":[{"t":"a\\\"b"},{"t":"\\\\"}]}`), uint8(1), uint8(3))
	f.Add([]byte(`{"batch":[]}`), uint8(2), uint8(5))
	f.Fuzz(func(t *testing.T, body []byte, first, rest uint8) {
		if !json.Valid(body) {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil {
			return // a top-level array or scalar
		}
		want, wantOK := batchLength(body)
		got, ok := countBatch(&splitReader{data: body, sizes: []int{int(first) + 1, int(rest) + 1}})
		if ok != wantOK || (ok && got != want) {
			t.Fatalf("countBatch(%q) in reads of %d then %d bytes = %d, %v; encoding/json: %d, %v",
				body, int(first)+1, int(rest)+1, got, ok, want, wantOK)
		}
	})
}
