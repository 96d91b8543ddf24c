package enrich

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/llm-enricher/enricher/internal/lookup"
)

// Names of the environment variables in Config.
const (
	EnvRules          = "ENRICHER_RULES"
	EnvLookups        = "ENRICHER_LOOKUPS"
	EnvPrivacyMode    = "ENRICHER_PRIVACY_MODE"
	EnvRedactPatterns = "ENRICHER_REDACT_PATTERNS"
)

// maxLookups bounds ENRICHER_LOOKUPS, so that the lookups an event needs fit
// in one 64-bit mask.
const maxLookups = 64

// Config is the enrichment configuration, read from environment variables.
// Its tags carry no prefix: the service configuration parses it with the
// prefix "ENRICHER_", so Rules is read from ENRICHER_RULES. The JSON formats
// are described with examples in docs/enrichment.md.
type Config struct {
	// Rules is a JSON array of rules, each setting one property, group or
	// the distinct id, or nulling the LLM input and output. Empty means no
	// rules.
	Rules string `env:"RULES"`
	// Lookups is a JSON array of named lookups that rules read values
	// from. Empty means no lookups.
	Lookups string `env:"LOOKUPS"`
	// PrivacyMode sets $ai_input and $ai_output_choices to null on every
	// event. Default false.
	PrivacyMode bool `env:"PRIVACY_MODE"`
	// RedactPatterns is a JSON array of RE2 regular expressions. Every match
	// in the text of $ai_input and $ai_output_choices is replaced with
	// "[REDACTED]". Empty means no redaction.
	RedactPatterns string `env:"REDACT_PATTERNS"`
}

// RuleSpec is one rule: one element of the JSON array in ENRICHER_RULES.
// A rule either sets the target Set from exactly one of Value, Record,
// Lookup and Template, or, with Privacy, nulls the LLM input and output.
type RuleSpec struct {
	// Set is the target: an event property such as "plan", a group such as
	// "$groups.company", or "distinct_id".
	Set string `json:"set,omitempty"`
	// Value is a static JSON value.
	Value json.RawMessage `json:"value,omitempty"`
	// Record is a path into the source record, such as "metadata.user.tier".
	Record string `json:"record,omitempty"`
	// Lookup names a lookup of ENRICHER_LOOKUPS, and Field is the path of
	// the value inside its result. An empty Field takes the whole result.
	Lookup string `json:"lookup,omitempty"`
	Field  string `json:"field,omitempty"`
	// Template is text with placeholders: {path} for a record path and
	// {lookup:path} for a field of a lookup result. {{ and }} stand for
	// literal braces.
	Template string `json:"template,omitempty"`
	// When limits the rule to records where a field equals a value.
	When *Condition `json:"when,omitempty"`
	// Mode is "if_absent" (the default), which leaves a target that the
	// event already has, or "always", which overwrites it.
	Mode string `json:"mode,omitempty"`
	// Privacy makes the rule null $ai_input and $ai_output_choices. A
	// privacy rule takes no other setting than When.
	Privacy bool `json:"privacy,omitempty"`
}

// Condition holds when the record field at Record exists and equals Equals.
type Condition struct {
	// Record is the path of the field in the source record.
	Record string `json:"record"`
	// Equals is a JSON string, number, boolean or null. Numbers compare
	// by value, so 1 equals 1.0.
	Equals json.RawMessage `json:"equals"`
}

// Rule modes.
const (
	ModeIfAbsent = "if_absent"
	ModeAlways   = "always"
)

// Targets with a special meaning.
const (
	targetDistinctID  = "distinct_id"
	targetGroupPrefix = "$groups."
	propGroups        = "$groups"
)

// parsedConfig is a Config decoded and checked.
type parsedConfig struct {
	lookups  []lookup.Spec
	rules    []RuleSpec
	patterns []*regexp.Regexp
}

// Validate checks every variable and returns all problems at once, each
// naming the variable and, for an array element, its index.
func (c Config) Validate() error {
	_, err := c.parse()
	return err
}

func (c Config) parse() (parsedConfig, error) {
	var p parsedConfig
	var errs []error

	lookups, lerrs := parseLookups(c.Lookups)
	p.lookups = lookups
	errs = append(errs, lerrs...)

	rules, rerrs := parseRules(c.Rules, lookups)
	p.rules = rules
	errs = append(errs, rerrs...)

	patterns, perrs := parsePatterns(c.RedactPatterns)
	p.patterns = patterns
	errs = append(errs, perrs...)

	return p, errors.Join(errs...)
}

// decodeArray splits a JSON array into its elements and decodes each into
// a T, rejecting unknown fields. Elements that fail come back as errors
// naming their index.
func decodeArray[T any](variable, value string) ([]T, []bool, []error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(value), &raw); err != nil {
		return nil, nil, []error{fmt.Errorf("%s: invalid JSON: want an array of objects: %w", variable, err)}
	}

	var errs []error
	items := make([]T, len(raw))
	ok := make([]bool, len(raw))
	for i, elem := range raw {
		dec := json.NewDecoder(bytes.NewReader(elem))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&items[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: invalid element: %w", variable, i, err))
			continue
		}
		ok[i] = true
	}
	return items, ok, errs
}

func parseLookups(value string) ([]lookup.Spec, []error) {
	specs, decoded, errs := decodeArray[lookup.Spec](EnvLookups, value)
	if len(specs) > maxLookups {
		errs = append(errs, fmt.Errorf("%s: %d lookups, at most %d are supported", EnvLookups, len(specs), maxLookups))
	}

	seen := make(map[string]int)
	for i := range specs {
		if !decoded[i] {
			continue
		}
		s := &specs[i]
		prefix := fmt.Sprintf("%s[%d]", EnvLookups, i)
		s.ApplyDefaults()
		errs = append(errs, s.Validate(prefix)...)
		if first, dup := seen[s.Name]; dup && s.Name != "" {
			errs = append(errs, fmt.Errorf("%s.name: duplicate name %q, first used by %s[%d]", prefix, s.Name, EnvLookups, first))
		}
		seen[s.Name] = i
	}
	return specs, errs
}

func parseRules(value string, lookups []lookup.Spec) ([]RuleSpec, []error) {
	rules, decoded, errs := decodeArray[RuleSpec](EnvRules, value)
	names := make(map[string]bool, len(lookups))
	for _, l := range lookups {
		names[l.Name] = true
	}
	for i := range rules {
		if decoded[i] {
			errs = append(errs, rules[i].validate(fmt.Sprintf("%s[%d]", EnvRules, i), names)...)
		}
	}
	return rules, errs
}

func (r *RuleSpec) validate(prefix string, lookups map[string]bool) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, field, fmt.Sprintf(format, args...)))
	}

	if r.When != nil {
		errs = append(errs, r.When.validate(prefix+".when")...)
	}
	if r.Privacy {
		if r.Set != "" || len(r.Value) > 0 || r.Record != "" || r.Lookup != "" || r.Field != "" || r.Template != "" || r.Mode != "" {
			add("privacy", "a privacy rule takes no setting other than \"when\"")
		}
		return errs
	}

	errs = append(errs, validateTarget(prefix, r.Set)...)
	sources := 0
	for _, set := range []bool{len(r.Value) > 0, r.Record != "", r.Lookup != "", r.Template != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		errs = append(errs, fmt.Errorf("%s: set exactly one of \"value\", \"record\", \"lookup\" and \"template\", got %d", prefix, sources))
	}
	if r.Field != "" && r.Lookup == "" {
		add("field", "\"field\" needs \"lookup\"")
	}
	if r.Lookup != "" && !lookups[r.Lookup] {
		add("lookup", "unknown lookup %q%s", r.Lookup, knownLookups(lookups))
	}

	usesLookup := r.Lookup != ""
	if r.Template != "" {
		tmpl, err := parseTemplate(r.Template)
		if err != nil {
			add("template", "%v", err)
		}
		for _, name := range tmpl.lookupNames() {
			usesLookup = true
			if !lookups[name] {
				add("template", "unknown lookup %q%s", name, knownLookups(lookups))
			}
		}
	}
	if r.Set == targetDistinctID && usesLookup {
		add("set", "the distinct id must not come from a lookup: a replayed record must keep its distinct id, and a lookup may return another value later")
	}

	switch r.Mode {
	case "", ModeIfAbsent, ModeAlways:
	default:
		add("mode", "unknown mode %q: use %q (the default) or %q", r.Mode, ModeIfAbsent, ModeAlways)
	}
	return errs
}

func validateTarget(prefix, set string) []error {
	fail := func(format string, args ...any) []error {
		return []error{fmt.Errorf("%s.set: %s", prefix, fmt.Sprintf(format, args...))}
	}
	switch {
	case set == "":
		return fail("missing: name a property, \"$groups.<type>\" or %q", targetDistinctID)
	case set == propGroups:
		return fail("set one group at a time, as \"$groups.<type>\"")
	case strings.HasPrefix(set, targetGroupPrefix) && len(set) == len(targetGroupPrefix):
		return fail("missing group type after %q", targetGroupPrefix)
	case set == "enricher_partially_enriched" || set == "enricher_truncated":
		return fail("%q is set by the enricher itself", set)
	case set == propInput || set == propOutput:
		// Privacy mode and redaction run before the rules, so a rule
		// could bring back the text they removed.
		return fail("%q comes from the record only, so that privacy mode and redaction apply to it", set)
	}
	return nil
}

func knownLookups(lookups map[string]bool) string {
	if len(lookups) == 0 {
		return ": " + EnvLookups + " defines none"
	}
	names := make([]string, 0, len(lookups))
	for name := range lookups {
		names = append(names, fmt.Sprintf("%q", name))
	}
	slices.Sort(names)
	return ": " + EnvLookups + " defines " + strings.Join(names, ", ")
}

func (c *Condition) validate(prefix string) []error {
	var errs []error
	if c.Record == "" {
		errs = append(errs, fmt.Errorf("%s.record: missing: set the record path to compare", prefix))
	}
	if len(c.Equals) == 0 {
		errs = append(errs, fmt.Errorf("%s.equals: missing: set the value to compare with", prefix))
		return errs
	}
	v, err := decodeValue(c.Equals)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s.equals: %w", prefix, err))
		return errs
	}
	switch v.(type) {
	case map[string]any, []any:
		errs = append(errs, fmt.Errorf("%s.equals: want a string, number, boolean or null", prefix))
	}
	return errs
}

func parsePatterns(value string) ([]*regexp.Regexp, []error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	var sources []string
	if err := json.Unmarshal([]byte(value), &sources); err != nil {
		return nil, []error{fmt.Errorf("%s: invalid JSON: want an array of strings: %w", EnvRedactPatterns, err)}
	}
	var errs []error
	patterns := make([]*regexp.Regexp, 0, len(sources))
	for i, src := range sources {
		if src == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: empty pattern, which matches everywhere", EnvRedactPatterns, i))
			continue
		}
		re, err := regexp.Compile(src)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: invalid regular expression: %w", EnvRedactPatterns, i, err))
			continue
		}
		patterns = append(patterns, re)
	}
	return patterns, errs
}

// decodeValue decodes one JSON value, keeping numbers as json.Number.
func decodeValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding JSON value: %w", err)
	}
	return v, nil
}
