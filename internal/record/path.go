package record

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// findPath returns the raw JSON value at a dot-separated path in the JSON
// document doc. It scans doc and skips every value off the path, so that a
// rule that reads one field does not decode the whole record. As
// encoding/json does for a map, it takes the last of duplicate keys.
//
// doc must be valid JSON. On invalid input findPath does not panic, but
// may find a value that a full decode would reject.
func findPath(doc []byte, path string) ([]byte, bool) {
	cur := doc
	for seg := range strings.SplitSeq(path, ".") {
		i := skipSpace(cur, 0)
		if i >= len(cur) {
			return nil, false
		}
		var ok bool
		switch cur[i] {
		case '{':
			cur, ok = objectMember(cur, i, seg)
		case '[':
			cur, ok = arrayElement(cur, i, seg)
		}
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// objectMember returns the value of key in the object that starts at
// doc[i].
func objectMember(doc []byte, i int, key string) ([]byte, bool) {
	var found []byte
	ok := eachMember(doc, i, func(name, value []byte) {
		if keyEquals(name, key) {
			found = value
		}
	})
	return found, ok && found != nil
}

// eachMember calls fn with the name, still escaped and without its quotes,
// and the value of each member of the object that starts at doc[i], in
// order. It returns false when the object is malformed.
func eachMember(doc []byte, i int, fn func(name, value []byte)) bool {
	i = skipSpace(doc, i+1)
	for i < len(doc) && doc[i] == '"' {
		end, ok := skipString(doc, i)
		if !ok {
			return false
		}
		name := doc[i+1 : end-1]
		i = skipSpace(doc, end)
		if i >= len(doc) || doc[i] != ':' {
			return false
		}
		start := skipSpace(doc, i+1)
		if i, ok = skipValue(doc, start); !ok {
			return false
		}
		fn(name, doc[start:i])
		i = skipSpace(doc, i)
		if i < len(doc) && doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
	return i < len(doc) && doc[i] == '}'
}

// keyEquals compares a raw object key, still escaped, with key.
func keyEquals(raw []byte, key string) bool {
	if plainKey(raw) {
		return string(raw) == key
	}
	return decodeKey(raw) == key
}

// plainKey reports whether a raw key reads the same decoded: it has no
// escape and is valid UTF-8.
func plainKey(raw []byte) bool {
	return bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw)
}

// decodeKey decodes a raw key as encoding/json does: escapes resolved and
// invalid UTF-8 replaced by U+FFFD.
func decodeKey(raw []byte) string {
	if plainKey(raw) {
		return string(raw)
	}
	var s string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	if json.Unmarshal(quoted, &s) != nil {
		return string(raw)
	}
	return s
}

// arrayElement returns element index of the array that starts at doc[i].
func arrayElement(doc []byte, i int, index string) ([]byte, bool) {
	n, err := strconv.Atoi(index)
	if err != nil || n < 0 {
		return nil, false
	}
	i = skipSpace(doc, i+1)
	for k := 0; i < len(doc) && doc[i] != ']'; k++ {
		end, ok := skipValue(doc, i)
		if !ok {
			return nil, false
		}
		if k == n {
			return doc[i:end], true
		}
		i = skipSpace(doc, end)
		if i < len(doc) && doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
	return nil, false
}

// skipValue returns the index just past the value that starts at doc[i].
func skipValue(doc []byte, i int) (int, bool) {
	if i >= len(doc) {
		return i, false
	}
	switch doc[i] {
	case '"':
		return skipString(doc, i)
	case '{', '[':
		return skipNested(doc, i)
	}
	for i < len(doc) {
		switch doc[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, true
		}
		i++
	}
	return i, true
}

// skipNested returns the index just past the object or array that starts
// at doc[i].
func skipNested(doc []byte, i int) (int, bool) {
	depth := 0
	for i < len(doc) {
		switch doc[i] {
		case '"':
			end, ok := skipString(doc, i)
			if !ok {
				return i, false
			}
			i = end
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
		i++
	}
	return i, false
}

// skipString returns the index just past the string that starts at doc[i].
// A quote ends the string unless an odd number of backslashes precede it.
func skipString(doc []byte, i int) (int, bool) {
	j := i + 1
	for {
		k := bytes.IndexByte(doc[j:], '"')
		if k < 0 {
			return len(doc), false
		}
		j += k
		backslashes := 0
		for b := j - 1; b > i && doc[b] == '\\'; b-- {
			backslashes++
		}
		j++
		if backslashes%2 == 0 {
			return j, true
		}
	}
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
