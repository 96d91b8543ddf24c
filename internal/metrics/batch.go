package metrics

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
)

var scanBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// countBatch counts the elements of the array under the top-level key
// "batch" of a JSON object, such as posthog-go's body
// {"api_key":"…","batch":[{…},{…}]}. It scans bytes and decodes nothing,
// and reports false when the input is not such an object.
func countBatch(r io.Reader) (int, bool) {
	bp := scanBuffers.Get().(*[]byte)
	defer scanBuffers.Put(bp)
	var s batchScanner
	for {
		n, err := r.Read(*bp)
		s.scan((*bp)[:n])
		if err == io.EOF {
			return s.count, s.found && !s.notObject && s.depth == 0 && !s.inString
		}
		if err != nil {
			return 0, false
		}
	}
}

// batchScanner is the state of countBatch between reads.
type batchScanner struct {
	depth    int
	inString bool
	escaped  bool
	// notObject is set when the body is not a JSON object.
	notObject bool
	// wantKey is true where the top-level object expects a member name.
	wantKey bool
	// key collects the current top-level string, still escaped, and
	// lastKey keeps the last member name, decoded, so that the value after
	// "batch": is recognised.
	key, lastKey []byte
	inBatch      bool
	found        bool
	// empty is true while the batch array has no element yet.
	empty bool
	count int
}

func (s *batchScanner) scan(p []byte) {
	for i := 0; i < len(p); i++ {
		if s.inString {
			i = s.scanString(p, i)
			continue
		}
		b := p[i]
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		if s.depth == 0 && b != '{' {
			s.notObject = true
		}
		if s.depth == 1 && !s.wantKey && b != ',' && b != '}' {
			s.value(b)
		}
		switch b {
		case '"':
			s.inString = true
			s.key = s.key[:0]
			s.element()
		case '{', '[':
			if !(s.depth == 1 && s.inBatch && s.empty) {
				s.element()
			}
			s.depth++
			if s.depth == 1 {
				s.wantKey = true
			}
		case '}', ']':
			s.depth--
			if s.depth == 1 {
				s.inBatch = false
			}
		case ',':
			if s.depth == 1 {
				s.wantKey = true
			}
			if s.inBatch && s.depth == 2 {
				s.count++
			}
		case ':':
			if s.depth == 1 {
				s.wantKey = false
			}
		default:
			s.element()
		}
	}
}

// value notes the start of a top-level member's value, whose first byte is
// b. The last "batch" member counts, as in encoding/json, and only an
// array counts as a batch.
func (s *batchScanner) value(b byte) {
	if string(s.lastKey) != "batch" {
		return
	}
	s.lastKey = s.lastKey[:0]
	s.count = 0
	s.found = b == '['
	s.inBatch, s.empty = s.found, s.found
}

// element counts the first element of the batch array when it starts.
func (s *batchScanner) element() {
	if s.inBatch && s.depth == 2 && s.empty {
		s.count, s.empty = 1, false
	}
}

// scanString consumes string bytes from p[i:] up to and including the
// closing quote, and returns the index of the last byte consumed. Inside
// an event it jumps from quote to quote, which are few in a body. A quote
// after an odd run of backslashes is escaped and does not end the string.
func (s *batchScanner) scanString(p []byte, i int) int {
	if s.depth == 1 {
		return s.scanKey(p, i)
	}
	if s.escaped {
		s.escaped = false
		i++
	}
	for i < len(p) {
		j := bytes.IndexByte(p[i:], '"')
		if j < 0 {
			s.escaped = backslashes(p[i:])%2 == 1
			return len(p) - 1
		}
		q := i + j
		if backslashes(p[i:q])%2 == 0 {
			s.inString = false
			return q
		}
		i = q + 1
	}
	return len(p) - 1
}

// backslashes returns the length of the run of backslashes that ends p.
func backslashes(p []byte) int {
	n := 0
	for n < len(p) && p[len(p)-1-n] == '\\' {
		n++
	}
	return n
}

// scanKey is scanString for a string of the top-level object, whose
// bytes it collects to recognise the member name "batch".
func (s *batchScanner) scanKey(p []byte, i int) int {
	for ; i < len(p); i++ {
		c := p[i]
		if !s.escaped && c == '"' {
			s.inString = false
			if s.wantKey {
				s.lastKey = appendKey(s.lastKey[:0], s.key)
			}
			return i
		}
		s.escaped = !s.escaped && c == '\\'
		s.key = append(s.key, c)
	}
	return i
}

// appendKey appends the member name raw, without its quotes, decoded.
func appendKey(dst, raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return append(dst, raw...)
	}
	var name string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &name) != nil {
		return dst
	}
	return append(dst, name...)
}
