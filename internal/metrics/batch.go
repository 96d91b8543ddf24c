package metrics

import (
	"bufio"
	"io"
	"sync"
)

var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// countBatch counts the elements of the array under the top-level key
// "batch" of a JSON object, such as posthog-go's body
// {"api_key":"…","batch":[{…},{…}]}. It scans bytes and decodes nothing,
// and reports false when the input is not such an object.
func countBatch(r io.Reader) (int, bool) {
	br := bufReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		bufReaders.Put(br)
	}()

	var (
		depth    int
		inString bool
		escaped  bool
		// key collects the current top-level string, so that the value
		// after "batch": can be recognised.
		key, lastKey []byte
		inBatch      bool
		found        bool
		count        int
		empty        = true
	)
	for {
		b, err := br.ReadByte()
		if err != nil {
			return count, err == io.EOF && depth == 0 && !inString && found
		}
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			case depth == 1:
				key = append(key, b)
			}
			if depth == 1 && !inString {
				lastKey = append(lastKey[:0], key...)
			}
			continue
		}
		switch b {
		case '"':
			inString = true
			key = key[:0]
			if inBatch && depth == 2 && empty {
				count, empty = 1, false
			}
		case '{', '[':
			if depth == 1 && b == '[' && string(lastKey) == "batch" {
				inBatch, found, empty = true, true, true
			} else if inBatch && depth == 2 && empty {
				count, empty = 1, false
			}
			depth++
		case '}', ']':
			depth--
			if depth == 1 {
				inBatch = false
			}
		case ',':
			if inBatch && depth == 2 {
				count++
			}
		case ' ', '\t', '\n', '\r', ':':
		default:
			if inBatch && depth == 2 && empty {
				count, empty = 1, false
			}
		}
	}
}
