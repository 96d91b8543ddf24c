package metrics

import (
	"bytes"
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
			return s.count, s.found && s.depth == 0 && !s.inString
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
	// key collects the current top-level string, and lastKey keeps the
	// last complete one, so that the value after "batch": is recognised.
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
		switch b := p[i]; b {
		case '"':
			s.inString = true
			s.key = s.key[:0]
			s.element()
		case '{', '[':
			if s.depth == 1 && b == '[' && string(s.lastKey) == "batch" {
				s.inBatch, s.found, s.empty = true, true, true
			} else {
				s.element()
			}
			s.depth++
		case '}', ']':
			s.depth--
			if s.depth == 1 {
				s.inBatch = false
			}
		case ',':
			if s.inBatch && s.depth == 2 {
				s.count++
			}
		case ' ', '\t', '\n', '\r', ':':
		default:
			s.element()
		}
	}
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
// bytes it collects to recognise the key "batch".
func (s *batchScanner) scanKey(p []byte, i int) int {
	for ; i < len(p); i++ {
		if s.escaped {
			s.escaped = false
			s.key = append(s.key, p[i])
			continue
		}
		switch p[i] {
		case '\\':
			s.escaped = true
		case '"':
			s.inString = false
			s.lastKey = append(s.lastKey[:0], s.key...)
			return i
		default:
			s.key = append(s.key, p[i])
		}
	}
	return i
}
