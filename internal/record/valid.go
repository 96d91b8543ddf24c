package record

import "encoding/binary"

// maxDepth is the deepest nesting that valid accepts, as encoding/json.
const maxDepth = 10000

// valid reports whether doc is one JSON value, as json.Valid does. It
// checks strings 8 bytes at a time, because the text of prompts and
// answers makes up most of a record.
func valid(doc []byte) bool {
	i, ok := validValue(doc, skipSpace(doc, 0), 0)
	return ok && skipSpace(doc, i) == len(doc)
}

func validValue(doc []byte, i, depth int) (int, bool) {
	if i >= len(doc) {
		return i, false
	}
	switch c := doc[i]; {
	case c == '"':
		return validString(doc, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return i, false
		}
		return validNested(doc, i, depth+1)
	case c == 't':
		return literal(doc, i, "true")
	case c == 'f':
		return literal(doc, i, "false")
	case c == 'n':
		return literal(doc, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return validNumber(doc, i)
	}
	return i, false
}

// validNested checks the object or array that starts at doc[i].
func validNested(doc []byte, i, depth int) (int, bool) {
	object := doc[i] == '{'
	closing := byte(']')
	if object {
		closing = '}'
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == closing {
		return i + 1, true
	}
	for {
		var ok bool
		if object {
			if i >= len(doc) || doc[i] != '"' {
				return i, false
			}
			if i, ok = validString(doc, i); !ok {
				return i, false
			}
			i = skipSpace(doc, i)
			if i >= len(doc) || doc[i] != ':' {
				return i, false
			}
			i = skipSpace(doc, i+1)
		}
		if i, ok = validValue(doc, i, depth); !ok {
			return i, false
		}
		i = skipSpace(doc, i)
		switch {
		case i >= len(doc):
			return i, false
		case doc[i] == closing:
			return i + 1, true
		case doc[i] != ',':
			return i, false
		}
		i = skipSpace(doc, i+1)
	}
}

func literal(doc []byte, i int, word string) (int, bool) {
	end := i + len(word)
	return end, end <= len(doc) && string(doc[i:end]) == word
}

// validNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func validNumber(doc []byte, i int) (int, bool) {
	if doc[i] == '-' {
		i++
	}
	switch {
	case i < len(doc) && doc[i] == '0':
		i++
	case i < len(doc) && doc[i] >= '1' && doc[i] <= '9':
		i = digits(doc, i)
	default:
		return i, false
	}
	if i < len(doc) && doc[i] == '.' {
		start := i + 1
		if i = digits(doc, start); i == start {
			return i, false
		}
	}
	if i < len(doc) && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < len(doc) && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		start := i
		if i = digits(doc, start); i == start {
			return i, false
		}
	}
	return i, true
}

func digits(doc []byte, i int) int {
	for i < len(doc) && doc[i] >= '0' && doc[i] <= '9' {
		i++
	}
	return i
}

// SWAR constants: a byte of ones and a byte of high bits in each lane.
const (
	lanes = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainWord reports whether none of the 8 bytes of w is a quote, a
// backslash or a control character below 0x20.
func plainWord(w uint64) bool {
	below := (w - lanes*0x20) &^ w
	quote := w ^ (lanes * '"')
	slash := w ^ (lanes * '\\')
	return (below|((quote-lanes)&^quote)|((slash-lanes)&^slash))&highs == 0
}

// validString checks the string that starts at doc[i]: no control
// character, and only the escapes that JSON defines. Like json.Valid, it
// accepts bytes that are not UTF-8.
func validString(doc []byte, i int) (int, bool) {
	j := i + 1
	for {
		for j+8 <= len(doc) && plainWord(binary.LittleEndian.Uint64(doc[j:])) {
			j += 8
		}
		if j >= len(doc) {
			return j, false
		}
		switch c := doc[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return j, false
		case c == '\\':
			n, ok := validEscape(doc, j)
			if !ok {
				return j, false
			}
			j += n
		default:
			j++
		}
	}
}

// validEscape checks the escape at doc[j] and returns its length.
func validEscape(doc []byte, j int) (int, bool) {
	if j+1 >= len(doc) {
		return 0, false
	}
	switch doc[j+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, true
	case 'u':
		if j+6 > len(doc) {
			return 0, false
		}
		for _, h := range doc[j+2 : j+6] {
			if !isHex(h) {
				return 0, false
			}
		}
		return 6, true
	}
	return 0, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
