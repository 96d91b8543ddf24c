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
// closing quote, and returns the index of the last byte consumed. It jumps
// over the bytes between quotes and backslashes, which are most of a body.
func (s *batchScanner) scanString(p []byte, i int) int {
	for ; i < len(p); i++ {
		if s.escaped {
			s.escaped = false
			s.keyByte(p[i])
			continue
		}
		j := bytes.IndexAny(p[i:], `"\`)
		if j < 0 {
			s.keyBytes(p[i:])
			return len(p) - 1
		}
		s.keyBytes(p[i : i+j])
		i += j
		if p[i] == '\\' {
			s.escaped = true
			continue
		}
		s.inString = false
		if s.depth == 1 {
			s.lastKey = append(s.lastKey[:0], s.key...)
		}
		return i
	}
	return i
}

func (s *batchScanner) keyByte(b byte) {
	if s.depth == 1 {
		s.key = append(s.key, b)
	}
}

func (s *batchScanner) keyBytes(b []byte) {
	if s.depth == 1 {
		s.key = append(s.key, b...)
	}
}
