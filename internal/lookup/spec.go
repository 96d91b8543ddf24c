package lookup

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Defaults for the optional settings of a Spec.
const (
	DefaultDeadline     = time.Second
	DefaultMaxEntries   = 10000
	DefaultTTL          = 5 * time.Minute
	DefaultNegativeTTL  = 30 * time.Second
	DefaultHTTPTimeout  = 2 * time.Second
	DefaultMaxConns     = 100
	DefaultPollInterval = 5 * time.Second
)

// File formats of a file source.
const (
	FormatJSON  = "json"
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

var namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// Duration is a time.Duration written in JSON as a Go duration string such
// as "250ms" or "5m".
type Duration time.Duration

// UnmarshalJSON parses a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("parsing duration: want a string such as \"500ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parsing duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Spec is the configuration of one lookup: one element of the JSON array in
// ENRICHER_LOOKUPS. Exactly one of HTTP, Kafka and File is set.
type Spec struct {
	// Name identifies the lookup in rules, templates, logs and the
	// "lookup" metric label.
	Name string `json:"name"`
	// Key is the record path whose value is the lookup key, such as
	// "distinct_id" or "properties.prompt_id".
	Key string `json:"key"`
	// Deadline is how long an event waits for this lookup before it is sent
	// without the lookup's properties. Default 1s.
	Deadline Duration `json:"deadline"`
	// Cache configures the cache of an HTTP lookup. Kafka and file lookups
	// hold their whole table in memory and take no cache settings.
	Cache *CacheSpec `json:"cache,omitempty"`

	HTTP  *HTTPSpec  `json:"http,omitempty"`
	Kafka *KafkaSpec `json:"kafka,omitempty"`
	File  *FileSpec  `json:"file,omitempty"`
}

// CacheSpec configures the cache in front of an HTTP lookup.
type CacheSpec struct {
	// MaxEntries bounds the cache, least recently used first out.
	// Default 10000.
	MaxEntries int `json:"max_entries"`
	// TTL is how long a found value is served without asking the upstream.
	// Default 5m.
	TTL Duration `json:"ttl"`
	// NegativeTTL is how long a "not found" result or a failure is cached.
	// Default 30s, and at most TTL.
	NegativeTTL Duration `json:"negative_ttl"`
	// MaxStale is how long past TTL a found value is still served while
	// one background request refreshes it. Default equal to TTL; set "0s"
	// to never serve a stale value.
	MaxStale *Duration `json:"max_stale,omitempty"`
}

// HTTPSpec configures a lookup that sends GET requests to a JSON API.
type HTTPSpec struct {
	// URL is the request URL with the placeholder {key}, which is replaced
	// by the path-escaped key before the "?" and the query-escaped key
	// after it.
	URL string `json:"url"`
	// Timeout bounds one upstream request. It may exceed the lookup
	// deadline, so that a slow response still fills the cache. Default 2s.
	Timeout Duration `json:"timeout"`
	// Headers are request headers. Their values are read from an
	// environment variable or a file, never written inline.
	Headers map[string]SecretRef `json:"headers,omitempty"`
	// MaxConnections bounds the connections to the upstream host, which
	// are all kept open for reuse. Requests beyond it wait for a free
	// connection. Default 100.
	MaxConnections int `json:"max_connections,omitempty"`
}

// SecretRef names where a secret value is read from at startup: exactly one
// of Env and File is set.
type SecretRef struct {
	// Env is the name of an environment variable.
	Env string `json:"env,omitempty"`
	// File is the path of a file, such as a mounted Kubernetes secret.
	// Surrounding white space, a final newline included, is removed.
	File string `json:"file,omitempty"`
}

// KafkaSpec configures a lookup into a compacted Kafka topic whose record
// keys are lookup keys and whose values are JSON.
type KafkaSpec struct {
	// Topic is the topic to read from the beginning.
	Topic string `json:"topic"`
}

// FileSpec configures a lookup into a local file.
type FileSpec struct {
	// Path is the file. Symbolic links are followed at every poll, so a
	// Kubernetes ConfigMap update is seen.
	Path string `json:"path"`
	// Format is "json" (an object keyed by lookup key), "jsonl" (one object
	// per line) or "csv" (a header line, then one row per key). Default
	// from the file name extension: .json, .jsonl or .ndjson, .csv.
	Format string `json:"format,omitempty"`
	// KeyField is the path of the key inside each object of a "jsonl" file,
	// or the key column of a "csv" file.
	KeyField string `json:"key_field,omitempty"`
	// PollInterval is how often the file is checked for changes.
	// Default 5s.
	PollInterval Duration `json:"poll_interval"`
}

// SourceKind returns "http", "kafka" or "file", or "" when no source is set.
func (s *Spec) SourceKind() string {
	switch {
	case s.HTTP != nil:
		return "http"
	case s.Kafka != nil:
		return "kafka"
	case s.File != nil:
		return "file"
	}
	return ""
}

// ApplyDefaults fills the unset optional settings.
func (s *Spec) ApplyDefaults() {
	if s.Deadline == 0 {
		s.Deadline = Duration(DefaultDeadline)
	}
	if s.HTTP != nil {
		if s.Cache == nil {
			s.Cache = &CacheSpec{}
		}
		s.Cache.applyDefaults()
		if s.HTTP.Timeout == 0 {
			s.HTTP.Timeout = Duration(DefaultHTTPTimeout)
		}
		if s.HTTP.MaxConnections == 0 {
			s.HTTP.MaxConnections = DefaultMaxConns
		}
	}
	if s.File != nil {
		if s.File.Format == "" {
			s.File.Format = formatFromExt(s.File.Path)
		}
		if s.File.PollInterval == 0 {
			s.File.PollInterval = Duration(DefaultPollInterval)
		}
	}
}

func (c *CacheSpec) applyDefaults() {
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.TTL == 0 {
		c.TTL = Duration(DefaultTTL)
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = Duration(min(DefaultNegativeTTL, time.Duration(c.TTL)))
	}
	if c.MaxStale == nil {
		stale := c.TTL
		c.MaxStale = &stale
	}
}

func formatFromExt(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return FormatJSON
	case ".jsonl", ".ndjson":
		return FormatJSONL
	case ".csv":
		return FormatCSV
	}
	return ""
}

// Validate checks a spec after ApplyDefaults. Each error names its setting
// as prefix + "." + field, so that the caller can pass the variable name and
// the array index as prefix, such as "ENRICHER_LOOKUPS[1]".
func (s *Spec) Validate(prefix string) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, field, fmt.Sprintf(format, args...)))
	}

	if !namePattern.MatchString(s.Name) {
		add("name", "invalid name %q: use a letter, then letters, digits, '_' or '-'", s.Name)
	}
	if s.Key == "" {
		add("key", "missing: set the record path of the lookup key, such as \"distinct_id\"")
	}
	if s.Deadline <= 0 {
		add("deadline", "must be positive, got %s", time.Duration(s.Deadline))
	}

	sources := 0
	for _, set := range []bool{s.HTTP != nil, s.Kafka != nil, s.File != nil} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		errs = append(errs, fmt.Errorf("%s: set exactly one source of \"http\", \"kafka\" and \"file\", got %d", prefix, sources))
	}
	if s.Cache != nil && s.HTTP == nil {
		add("cache", "only an http lookup has a cache: kafka and file lookups keep their whole table in memory")
	}

	if s.HTTP != nil {
		errs = append(errs, s.HTTP.validate(prefix+".http")...)
		errs = append(errs, s.Cache.validate(prefix+".cache")...)
	}
	if s.Kafka != nil && s.Kafka.Topic == "" {
		add("kafka.topic", "missing")
	}
	if s.File != nil {
		errs = append(errs, s.File.validate(prefix+".file")...)
	}
	return errs
}

func (c *CacheSpec) validate(prefix string) []error {
	var errs []error
	if c.MaxEntries <= 0 {
		errs = append(errs, fmt.Errorf("%s.max_entries: must be positive, got %d", prefix, c.MaxEntries))
	}
	if c.TTL <= 0 {
		errs = append(errs, fmt.Errorf("%s.ttl: must be positive, got %s", prefix, time.Duration(c.TTL)))
	}
	if c.NegativeTTL <= 0 || c.NegativeTTL > c.TTL {
		errs = append(errs, fmt.Errorf("%s.negative_ttl: must be positive and at most ttl (%s), got %s",
			prefix, time.Duration(c.TTL), time.Duration(c.NegativeTTL)))
	}
	if c.MaxStale != nil && *c.MaxStale < 0 {
		errs = append(errs, fmt.Errorf("%s.max_stale: must not be negative, got %s", prefix, time.Duration(*c.MaxStale)))
	}
	return errs
}

func (h *HTTPSpec) validate(prefix string) []error {
	var errs []error
	if err := checkURLTemplate(h.URL); err != nil {
		errs = append(errs, fmt.Errorf("%s.url: %w", prefix, err))
	}
	if h.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: must be positive, got %s", prefix, time.Duration(h.Timeout)))
	}
	if h.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("%s.max_connections: must be positive, got %d", prefix, h.MaxConnections))
	}
	for name, ref := range h.Headers {
		if _, err := resolveHeader(name, ref); err != nil {
			errs = append(errs, fmt.Errorf("%s.headers.%s: %w", prefix, name, err))
		}
	}
	return errs
}

func checkURLTemplate(tpl string) error {
	u, err := url.Parse(strings.ReplaceAll(tpl, keyPlaceholder, "k"))
	if err == nil && u.User != nil {
		// The template appears in logs and errors, so it must hold no
		// secret. This message leaves the template out for that reason.
		return errors.New("invalid URL template: it contains credentials, which would be logged: send them in a header from \"env\" or \"file\"")
	}
	if !strings.Contains(tpl, keyPlaceholder) {
		return fmt.Errorf("invalid URL template %q: it must contain %s", tpl, keyPlaceholder)
	}
	if err != nil {
		return fmt.Errorf("invalid URL template %q: %w", tpl, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid URL template %q: want an absolute http or https URL", tpl)
	}
	return nil
}

func (f *FileSpec) validate(prefix string) []error {
	var errs []error
	if f.Path == "" {
		errs = append(errs, fmt.Errorf("%s.path: missing", prefix))
	}
	switch f.Format {
	case FormatJSON:
	case FormatJSONL, FormatCSV:
		if f.KeyField == "" {
			errs = append(errs, fmt.Errorf("%s.key_field: missing: a %s file needs the name of its key field", prefix, f.Format))
		}
	case "":
		errs = append(errs, fmt.Errorf("%s.format: missing: the extension of %q is not .json, .jsonl, .ndjson or .csv, so set \"json\", \"jsonl\" or \"csv\"", prefix, f.Path))
	default:
		errs = append(errs, fmt.Errorf("%s.format: unknown format %q: use \"json\", \"jsonl\" or \"csv\"", prefix, f.Format))
	}
	if f.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("%s.poll_interval: must be positive, got %s", prefix, time.Duration(f.PollInterval)))
	}
	return errs
}

// resolveHeader reads a header value. Its errors name the header and the
// place the value comes from, never the value.
func resolveHeader(name string, ref SecretRef) (string, error) {
	if !validHeaderName(name) {
		return "", fmt.Errorf("invalid header name %q", name)
	}

	var value string
	switch {
	case ref.Env != "" && ref.File != "":
		return "", fmt.Errorf("set one of \"env\" and \"file\", not both")
	case ref.Env != "":
		value = os.Getenv(ref.Env)
		if value == "" {
			return "", fmt.Errorf("environment variable %s is unset or empty", ref.Env)
		}
	case ref.File != "":
		b, err := os.ReadFile(ref.File)
		if err != nil {
			return "", fmt.Errorf("reading header value: %w", err)
		}
		value = strings.TrimSpace(string(b))
		if value == "" {
			return "", fmt.Errorf("file %s is empty", ref.File)
		}
	default:
		return "", fmt.Errorf("missing: set \"env\" to an environment variable name or \"file\" to a file path")
	}

	if strings.ContainsAny(value, "\r\n\x00") {
		return "", fmt.Errorf("invalid value: it contains a line break or NUL byte")
	}
	return value, nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
