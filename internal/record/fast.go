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
func (c *callV1) unmarshal(v []byte) error {
	if !valid(v) {
		if err := json.Unmarshal(v, c); err != nil {
			return err
		}
		return errors.New("invalid JSON")
	}
	var seen uint64
	fast := eachMember(v, 0, func(name, value []byte) {
		if seen == ^uint64(0) {
			return
		}
		i, known := fieldIndex[string(name)]
		switch {
		case !known && !foldsToField(name):
		case !known, seen&(1<<i) != 0, !c.set(string(name), value):
			seen = ^uint64(0)
		default:
			seen |= 1 << i
		}
	})
	if fast && seen != ^uint64(0) {
		return nil
	}
	*c = callV1{}
	return json.Unmarshal(v, c)
}

// foldsToField reports whether json.Unmarshal may match the key name to a
// field of callV1 by ignoring case or after unescaping.
func foldsToField(name []byte) bool {
	if !plainKey(name) {
		return true
	}
	for field := range fieldIndex {
		if len(field) == len(name) && strings.EqualFold(field, string(name)) {
			return true
		}
	}
	return false
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
		return setCountField(&c.InputTokens, value)
	case "output_tokens":
		return setCountField(&c.OutputTokens, value)
	case "cache_read_input_tokens":
		return setCountField(&c.CacheReadInputTokens, value)
	case "cache_creation_input_tokens":
		return setCountField(&c.CacheCreationInputTokens, value)
	case "reasoning_tokens":
		return setCountField(&c.ReasoningTokens, value)
	case "http_status":
		return setCountField(&c.HTTPStatus, value)
	case "latency":
		return setFloatField(&c.Latency, value)
	case "latency_ms":
		return setFloatField(&c.LatencyMs, value)
	case "time_to_first_token":
		return setFloatField(&c.TimeToFirstToken, value)
	case "is_error":
		return setBoolField(&c.IsError, value)
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
	s, ok := plainString(value)
	if ok {
		*dst = s
	}
	return ok
}

// plainString returns the JSON string value when it has no escape and is
// valid UTF-8, so that it reads the same decoded.
func plainString(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' {
		return "", false
	}
	inner := value[1 : len(value)-1]
	if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}

func setCountField(dst **count, value []byte) bool {
	if string(value) == "null" {
		*dst = nil
		return true
	}
	n, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil {
		return false
	}
	*dst = new(count(n))
	return true
}

func setFloatField(dst **float64, value []byte) bool {
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
	*dst = new(f)
	return true
}

func setBoolField(dst **bool, value []byte) bool {
	if string(value) == "null" {
		*dst = nil
		return true
	}
	var b bool
	if !setBool(&b, value) {
		return false
	}
	*dst = new(b)
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

// setProperties keeps each custom property as a slice of the record.
func (c *callV1) setCustomProperties(value []byte) bool {
	if string(value) == "null" {
		c.Properties = nil
		return true
	}
	if value[0] != '{' {
		return false
	}
	props := make(map[string]json.RawMessage, 8)
	plain := eachMember(value, 0, func(name, v []byte) {
		if plainKey(name) {
			props[string(name)] = v
		} else {
			props = nil
		}
	})
	if !plain || props == nil {
		return false
	}
	c.Properties = props
	return true
}
