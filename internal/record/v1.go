package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/llm-enricher/enricher/internal/event"
)

// V1 decodes the version 1 LLM call record documented in
// docs/record-format.md. Its field names mirror the PostHog SDK parameters
// without the "$ai_" prefix.
type V1 struct{}

// callV1 is the version 1 record. Nested documents stay raw: they are
// copied into the event as they are, without a decode and re-encode.
type callV1 struct {
	ID         string          `json:"id"`
	Timestamp  json.RawMessage `json:"timestamp"`
	DistinctID string          `json:"distinct_id"`
	Type       string          `json:"type"`

	Provider string `json:"provider"`
	Model    string `json:"model"`
	BaseURL  string `json:"base_url"`

	Input           json.RawMessage `json:"input"`
	OutputChoices   json.RawMessage `json:"output_choices"`
	ModelParameters json.RawMessage `json:"model_parameters"`
	Tools           json.RawMessage `json:"tools"`

	InputTokens              *count `json:"input_tokens"`
	OutputTokens             *count `json:"output_tokens"`
	CacheReadInputTokens     *count `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *count `json:"cache_creation_input_tokens"`
	ReasoningTokens          *count `json:"reasoning_tokens"`

	Latency          *float64 `json:"latency"`
	LatencyMs        *float64 `json:"latency_ms"`
	TimeToFirstToken *float64 `json:"time_to_first_token"`

	HTTPStatus *count          `json:"http_status"`
	IsError    *bool           `json:"is_error"`
	Error      json.RawMessage `json:"error"`
	StopReason string          `json:"stop_reason"`

	TraceID     string `json:"trace_id"`
	SpanID      string `json:"span_id"`
	ParentID    string `json:"parent_id"`
	SpanName    string `json:"span_name"`
	SessionID   string `json:"session_id"`
	AISessionID string `json:"ai_session_id"`

	Properties  map[string]json.RawMessage `json:"properties"`
	Groups      json.RawMessage            `json:"groups"`
	PrivacyMode bool                       `json:"privacy_mode"`

	// The fast path of unmarshal fills the fields below, and json.Unmarshal
	// leaves them alone.

	// props are the custom properties in record order, which the fast
	// path keeps instead of Properties.
	props []property
	// dollar is false when no top-level name starts with "$".
	dollar  bool
	strings stringArena
	// slots hold the values that the pointer fields above point to.
	slots struct {
		counts  [6]count
		floats  [3]float64
		isError bool
		props   [8]property
	}
}

// property is a custom property: its name as read from the record, the
// name as a string once the string arena assigns it, and its raw value.
type property struct {
	rawName []byte
	name    string
	value   []byte
}

var eventNames = map[string]string{
	"":           event.Generation,
	"generation": event.Generation,
	"embedding":  event.Embedding,
	"span":       event.Span,
	"trace":      event.Trace,
}

// Decode implements Decoder.
func (V1) Decode(in Input) (*event.Event, *Fields, error) {
	v := bytes.TrimSpace(in.Value)
	if len(v) == 0 || v[0] != '{' {
		return nil, nil, fmt.Errorf("%w: not a JSON object", ErrInvalid)
	}
	f := NewFields(v)
	var c callV1
	if err := c.unmarshal(v, f); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, describe(err, v))
	}

	name, ok := eventNames[c.Type]
	if !ok {
		return nil, nil, fmt.Errorf("%w: unknown type %q (want generation, embedding, span or trace)", ErrInvalid, c.Type)
	}
	ts, err := c.timestamp(in.Timestamp)
	if err != nil {
		return nil, nil, err
	}
	if c.Groups != nil && !isObject(c.Groups) {
		return nil, nil, fmt.Errorf("%w: groups is not an object", ErrInvalid)
	}

	ev := &event.Event{
		UUID:       event.ID(c.ID, in.Source),
		Name:       name,
		Timestamp:  ts,
		Properties: make(map[string]any, 24),
		Source:     in.Source,
	}
	c.setProperties(ev.Properties)
	if c.dollar {
		passThrough(f, ev.Properties)
	}
	for _, p := range c.props {
		ev.Properties[p.name] = json.RawMessage(p.value)
	}
	for k, p := range c.Properties {
		ev.Properties[k] = p
	}
	ev.DistinctID = c.distinctID(ev)
	return ev, f, nil
}

// timestamp returns the call time: the record's timestamp field, else the
// Kafka record timestamp. It is never the processing time, so that a
// replayed record keeps its identity.
func (c *callV1) timestamp(kafkaTime time.Time) (time.Time, error) {
	raw := c.Timestamp
	if len(raw) == 0 || string(raw) == "null" {
		return kafkaTime.UTC(), nil
	}
	if raw[0] == '"' {
		s, ok := plainString(raw)
		if !ok {
			if err := json.Unmarshal(raw, &s); err != nil {
				return time.Time{}, fmt.Errorf("%w: timestamp: %v", ErrInvalid, err)
			}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: timestamp %q is not RFC 3339", ErrInvalid, s)
		}
		return t.UTC(), nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %s is neither an RFC 3339 string nor epoch milliseconds", ErrInvalid, raw)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// distinctID returns the record's distinct id. A record without one belongs
// to no person: as PostHog's SDKs do, it falls back to the trace id, else
// the event uuid, and sets $process_person_profile to false.
func (c *callV1) distinctID(ev *event.Event) string {
	if c.DistinctID != "" {
		return c.DistinctID
	}
	ev.Properties["$process_person_profile"] = false
	if c.TraceID != "" {
		return c.TraceID
	}
	return ev.UUID
}

func (c *callV1) setProperties(p map[string]any) {
	setString(p, "$ai_provider", c.Provider)
	setString(p, "$ai_model", c.Model)
	setString(p, "$ai_base_url", c.BaseURL)
	setRaw(p, "$ai_input", c.Input)
	setRaw(p, "$ai_output_choices", c.OutputChoices)
	setRaw(p, "$ai_model_parameters", c.ModelParameters)
	setRaw(p, "$ai_tools", c.Tools)
	if c.PrivacyMode {
		p["$ai_input"] = nil
		p["$ai_output_choices"] = nil
	}

	setCount(p, "$ai_input_tokens", c.InputTokens)
	setCount(p, "$ai_output_tokens", c.OutputTokens)
	// PostHog's SDKs send cache token counts only when they are positive.
	if c.CacheReadInputTokens != nil && *c.CacheReadInputTokens > 0 {
		setCount(p, "$ai_cache_read_input_tokens", c.CacheReadInputTokens)
	}
	if c.CacheCreationInputTokens != nil && *c.CacheCreationInputTokens > 0 {
		setCount(p, "$ai_cache_creation_input_tokens", c.CacheCreationInputTokens)
	}
	setCount(p, "$ai_reasoning_tokens", c.ReasoningTokens)

	switch {
	case c.Latency != nil:
		p["$ai_latency"] = *c.Latency
	case c.LatencyMs != nil:
		p["$ai_latency"] = *c.LatencyMs / 1000
	}
	if c.TimeToFirstToken != nil {
		p["$ai_time_to_first_token"] = *c.TimeToFirstToken
	}
	setCount(p, "$ai_http_status", c.HTTPStatus)
	if c.IsError != nil {
		p["$ai_is_error"] = *c.IsError
	}
	c.setError(p)
	setString(p, "$ai_stop_reason", c.StopReason)

	setString(p, "$ai_trace_id", c.TraceID)
	setString(p, "$ai_span_id", c.SpanID)
	setString(p, "$ai_parent_id", c.ParentID)
	setString(p, "$ai_span_name", c.SpanName)
	setString(p, "$session_id", c.SessionID)
	setString(p, "$ai_session_id", c.AISessionID)
	setRaw(p, "$groups", c.Groups)
}

// setError sets $ai_error, a string: a string error is copied and any other
// JSON value is sent as its JSON text.
func (c *callV1) setError(p map[string]any) {
	if len(c.Error) == 0 || string(c.Error) == "null" {
		return
	}
	var s string
	if json.Unmarshal(c.Error, &s) == nil {
		p["$ai_error"] = s
		return
	}
	p["$ai_error"] = string(c.Error)
}

// passThrough copies top-level keys that are already spelled "$..." into
// the event unchanged.
func passThrough(f *Fields, p map[string]any) {
	f.each(func(name, value []byte) {
		if k := decodeKey(name); strings.HasPrefix(k, "$") {
			p[k] = json.RawMessage(value)
		}
	})
}

func setString(p map[string]any, key, v string) {
	if v != "" {
		p[key] = v
	}
}

func setRaw(p map[string]any, key string, v json.RawMessage) {
	if len(v) != 0 && string(v) != "null" {
		p[key] = v
	}
}

// setCount sets an integer property. An absent count stays absent: it is
// never sent as 0.
func setCount(p map[string]any, key string, v *count) {
	if v != nil {
		p[key] = int64(*v)
	}
}

func isObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && (t[0] == '{' || string(t) == "null")
}

// count is a token count or status code. It accepts a JSON integer, an
// integral float such as 12.0, or a string of digits, because publishers
// differ, and is always sent to PostHog as an integer.
type count int64

func (n *count) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) > 1 && s[0] == '"' {
		s = s[1 : len(s)-1]
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = count(i)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return &countError{value: string(b)}
	}
	*n = count(f)
	return nil
}

// countError is a count that is not an integer. encoding/json returns it
// without the field name, which describe adds.
type countError struct{ value string }

func (e *countError) Error() string { return e.value + " is not an integer count" }

// countFields are the JSON names of the count fields of callV1.
var countFields = func() []string {
	t := reflect.TypeFor[callV1]()
	var names []string
	for i := range t.NumField() {
		if t.Field(i).Type == reflect.TypeFor[*count]() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			names = append(names, name)
		}
	}
	return names
}()

// describe rewrites an error of json.Unmarshal on the record v so that it
// names the record field and the JSON type expected, not a Go type.
func describe(err error, v []byte) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		return fmt.Errorf("%s is %s, want %s", te.Field, jsonValue(te.Value), jsonKind(te.Type))
	}
	if ce, ok := errors.AsType[*countError](err); ok {
		// The first member that fails to decode as a count is the one
		// json.Unmarshal stopped at.
		field := ""
		eachMember(v, skipSpace(v, 0), func(name, value []byte) {
			var n count
			if field == "" && isCountField(decodeKey(name)) && n.UnmarshalJSON(value) != nil {
				field = decodeKey(name)
			}
		})
		if field != "" {
			return fmt.Errorf("%s: %w", field, ce)
		}
	}
	return err
}

func isCountField(name string) bool {
	for _, f := range countFields {
		if strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

// jsonValue names the JSON value that encoding/json describes as s, such
// as "string" or "number 1.5".
func jsonValue(s string) string {
	switch {
	case s == "array", s == "object":
		return "an " + s
	case strings.HasPrefix(s, "number "):
		return "the number " + strings.TrimPrefix(s, "number ")
	case s == "bool":
		return "a boolean"
	}
	return "a " + s
}

// jsonKind names the JSON values that decode into t.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	}
	return t.String()
}
