package lookup

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Field returns the value at a dot-separated path inside a decoded JSON
// value, and whether it exists. A segment selects a key of an object or,
// when it is a decimal number, an element of an array, so "input.0.content"
// selects the content of the first input message. The empty path selects v
// itself.
func Field(v any, path string) (any, bool) {
	for path != "" {
		seg := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			seg, path = path[:i], path[i+1:]
		} else {
			path = ""
		}

		switch node := v.(type) {
		case map[string]any:
			next, ok := node[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// String formats a scalar JSON value as text: a string as it is, a number in
// its shortest decimal form and a boolean as "true" or "false". It reports
// false for null, objects and arrays, which have no single text form.
func String(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case json.Number:
		return s.String(), true
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64), true
	case float32:
		return strconv.FormatFloat(float64(s), 'f', -1, 32), true
	case int:
		return strconv.Itoa(s), true
	case int64:
		return strconv.FormatInt(s, 10), true
	case int32:
		return strconv.FormatInt(int64(s), 10), true
	case uint64:
		return strconv.FormatUint(s, 10), true
	case bool:
		return strconv.FormatBool(s), true
	}
	return "", false
}
