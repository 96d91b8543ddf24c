package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fieldIndex maps each JSON name of callV1 to a bit of a seen mask.
var fieldIndex = func() map[string]uint {
	t := reflect.TypeFor[callV1]()
	m := make(map[string]uint, t.NumField())
	for i := range t.NumField() {
		if !t.Field(i).IsExported() {
			continue
		}
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = uint(i)
	}
	return m
}()

// unmarshal decodes the record v, a JSON object, as json.Unmarshal would.
// The text of prompts and answers makes up most of a record, so it checks
// v once with valid, keeps raw members as slices of v, and sets plain
// strings, integers, numbers and booleans itself. A record it cannot
// decode that way goes to json.Unmarshal whole: a value of another type or
// with escapes, a duplicate member, or a key that json.Unmarshal would
// match to a field only by ignoring case.
//
// The same pass gives f its index of top-level members, and notes whether
// a member name may start with "$".
func (c *callV1) unmarshal(v []byte, f *Fields) error {
	if !valid(v) {
		if err := json.Unmarshal(v, c); err != nil {
			return err
		}
		return errors.New("invalid JSON")
	}
	var seen uint64
	top := f.buf[:0]
	c.dollar = false
	members := eachMember(v, 0, func(name, value []byte) {
		i, known := fieldIndex[string(name)]
		plain := known || plainKey(name)
		top = append(top, member{name, value, plain})
		if len(name) > 0 && (name[0] == '$' || name[0] == '\\') {
			c.dollar = true
		}
		if seen == ^uint64(0) {
			return
		}
		switch {
		case !known && plain && !foldsToField(name):
		case !known, seen&(1<<i) != 0, !c.set(string(name), value):
			seen = ^uint64(0)
		default:
			seen |= 1 << i
		}
	})
	if members {
		f.adopt(top)
	} else {
		// Without the member names, passThrough has to read the record.
		c.dollar = true
	}
	if members && seen != ^uint64(0) {
		c.strings.assign()
		return nil
	}
	dollar := c.dollar
	*c = callV1{}
	c.dollar = dollar
	return json.Unmarshal(v, c)
}

// stringArena collects the plain string fields of a record while it is
// read, and copies them into one string at the end: one allocation for
// all ids and names instead of one each.
type stringArena struct {
	n    int
	dst  [16]*string
	raw  [16][]byte
	size int
}

// add sets *dst to raw when assign runs, or at once when the arena is full.
func (a *stringArena) add(dst *string, raw []byte) {
	if a.n == len(a.dst) {
		*dst = string(raw)
		return
	}
	a.dst[a.n], a.raw[a.n] = dst, raw
	a.n++
	a.size += len(raw)
}

func (a *stringArena) assign() {
	if a.n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(a.size)
	for _, r := range a.raw[:a.n] {
		b.Write(r)
	}
	all := b.String()
	at := 0
	for i, dst := range a.dst[:a.n] {
		*dst = all[at : at+len(a.raw[i])]
		at += len(a.raw[i])
	}
	*a = stringArena{}
}

// foldsToField reports whether json.Unmarshal may match the plain key name
// to a field of callV1 by ignoring case.
func foldsToField(name []byte) bool {
	// Folding keeps the length of an ASCII name, but not of others: "ſ"
	// (two bytes) folds to "s", and the Kelvin sign (three) to "k".
	ascii := isASCII(name)
	for field := range fieldIndex {
		if (!ascii || len(field) == len(name)) && strings.EqualFold(field, string(name)) {
			return true
		}
	}
	return false
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// set decodes value into the field with the JSON name, and reports false
// when it cannot do so exactly as json.Unmarshal would.
func (c *callV1) set(name string, value []byte) bool {
	switch name {
	case "timestamp":
		c.Timestamp = value
	case "input":
		c.Input = value
	case "output_choices":
		c.OutputChoices = value
	case "model_parameters":
		c.ModelParameters = value
	case "tools":
		c.Tools = value
	case "error":
		c.Error = value
	case "groups":
		c.Groups = value
	case "input_tokens":
		return setCountField(&c.InputTokens, &c.slots.counts[0], value)
	case "output_tokens":
		return setCountField(&c.OutputTokens, &c.slots.counts[1], value)
	case "cache_read_input_tokens":
		return setCountField(&c.CacheReadInputTokens, &c.slots.counts[2], value)
	case "cache_creation_input_tokens":
		return setCountField(&c.CacheCreationInputTokens, &c.slots.counts[3], value)
	case "reasoning_tokens":
		return setCountField(&c.ReasoningTokens, &c.slots.counts[4], value)
	case "http_status":
		return setCountField(&c.HTTPStatus, &c.slots.counts[5], value)
	case "latency":
		return setFloatField(&c.Latency, &c.slots.floats[0], value)
	case "latency_ms":
		return setFloatField(&c.LatencyMs, &c.slots.floats[1], value)
	case "time_to_first_token":
		return setFloatField(&c.TimeToFirstToken, &c.slots.floats[2], value)
	case "is_error":
		return setBoolField(&c.IsError, &c.slots.isError, value)
	case "privacy_mode":
		return setBool(&c.PrivacyMode, value)
	case "properties":
		return c.setCustomProperties(value)
	default:
		return c.setString(name, value)
	}
	return true
}

func (c *callV1) setString(name string, value []byte) bool {
	var dst *string
	switch name {
	case "id":
		dst = &c.ID
	case "distinct_id":
		dst = &c.DistinctID
	case "type":
		dst = &c.Type
	case "provider":
		dst = &c.Provider
	case "model":
		dst = &c.Model
	case "base_url":
		dst = &c.BaseURL
	case "stop_reason":
		dst = &c.StopReason
	case "trace_id":
		dst = &c.TraceID
	case "span_id":
		dst = &c.SpanID
	case "parent_id":
		dst = &c.ParentID
	case "span_name":
		dst = &c.SpanName
	case "session_id":
		dst = &c.SessionID
	case "ai_session_id":
		dst = &c.AISessionID
	default:
		return false
	}
	if string(value) == "null" {
		return true
	}
	if !plainStringValue(value) {
		return false
	}
	c.strings.add(dst, value[1:len(value)-1])
	return true
}

// plainString returns the JSON string value when it has no escape and is
// valid UTF-8, so that it reads the same decoded.
func plainString(value []byte) (string, bool) {
	if !plainStringValue(value) {
		return "", false
	}
	return string(value[1 : len(value)-1]), true
}

// plainStringValue reports whether value is a JSON string that has no
// escape and is valid UTF-8.
func plainStringValue(value []byte) bool {
	if len(value) < 2 || value[0] != '"' {
		return false
	}
	inner := value[1 : len(value)-1]
	return bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)
}

// setCountField sets *dst to point at slot, which holds the count. The
// slots live in callV1, so that the fields cost no allocation each.
func setCountField(dst **count, slot *count, value []byte) bool {
	if string(value) == "null" {
		*dst = nil
		return true
	}
	n, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil {
		return false
	}
	*slot = count(n)
	*dst = slot
	return true
}

func setFloatField(dst **float64, slot *float64, value []byte) bool {
	if string(value) == "null" {
		*dst = nil
		return true
	}
	if len(value) == 0 || (value[0] != '-' && (value[0] < '0' || value[0] > '9')) {
		return false
	}
	f, err := strconv.ParseFloat(string(value), 64)
	if err != nil {
		return false
	}
	*slot = f
	*dst = slot
	return true
}

func setBoolField(dst **bool, slot *bool, value []byte) bool {
	if string(value) == "null" {
		*dst = nil
		return true
	}
	if !setBool(slot, value) {
		return false
	}
	*dst = slot
	return true
}

func setBool(dst *bool, value []byte) bool {
	switch string(value) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	case "null":
	default:
		return false
	}
	return true
}

// setCustomProperties keeps each custom property as a slice of the record,
// in c.props; names go through the string arena.
func (c *callV1) setCustomProperties(value []byte) bool {
	if string(value) == "null" {
		c.props = c.props[:0]
		return true
	}
	if value[0] != '{' {
		return false
	}
	c.props = c.slots.props[:0]
	plain := true
	ok := eachMember(value, 0, func(name, v []byte) {
		plain = plain && plainKey(name)
		c.props = append(c.props, property{rawName: name, value: v})
	})
	if !ok || !plain {
		return false
	}
	// The names go to the arena once c.props stops growing, because the
	// arena keeps pointers into it.
	for i := range c.props {
		c.strings.add(&c.props[i].name, c.props[i].rawName)
	}
	return true
}
