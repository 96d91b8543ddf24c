package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/lookup"
)

// Options are the dependencies of Rules.
type Options struct {
	// Static properties are set on every event before the rules run, so
	// that a rule with mode "always" can override them.
	Static map[string]string
	// Registerer receives the lookup metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives starts, stops and lookup failures. Nil discards them.
	Logger *slog.Logger
	// KafkaOpts are the franz-go options of Kafka lookups: the seed
	// brokers and the security options.
	KafkaOpts []kgo.Opt
	// Now returns the time used for lookup cache expiry. Nil means
	// time.Now. Tests set it to expire entries without sleeping.
	Now func() time.Time
}

// Rules is the Enricher built from a Config.
type Rules struct {
	static      map[string]string
	rules       []rule
	lookups     []*lookup.Lookup
	keyPaths    []string // per lookup, the record path of its key
	privacyAll  bool
	privacyWhen []*condition
	redact      []*regexp.Regexp
	logger      *slog.Logger

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // events waiting for lookups
}

var _ Enricher = (*Rules)(nil)

// resolution is the outcome of resolving a rule's value.
type resolution int

const (
	resolved   resolution = iota
	unresolved            // nothing to set, cleanly: a missing field or key
	failed                // a lookup failed or timed out
)

type targetKind int

const (
	targetProperty targetKind = iota
	targetGroup
	targetDistinct
)

type target struct {
	kind targetKind
	name string
}

// rule is a compiled RuleSpec that sets a target.
type rule struct {
	target target
	always bool
	when   *condition

	// Exactly one source is set: hasStatic, record, tmpl, or else the
	// lookup at lookupIndex.
	static      any
	hasStatic   bool
	record      string
	tmpl        *template
	lookupIndex int
	field       string

	needs uint64 // bit i set: the rule reads lookup i
}

// condition is a compiled Condition. A nil condition always holds.
type condition struct {
	path string
	want any
}

// New builds Rules from cfg. It fails when cfg is invalid, with the same
// errors as Validate, or when a lookup cannot start, such as a file that
// cannot be read.
func New(cfg Config, opts Options) (*Rules, error) {
	parsed, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	metrics, err := lookup.NewMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}

	r := &Rules{static: opts.Static, privacyAll: cfg.PrivacyMode, redact: parsed.patterns, logger: opts.Logger}
	index := make(map[string]int, len(parsed.lookups))
	for i, spec := range parsed.lookups {
		l, err := lookup.New(spec, lookup.Options{
			Metrics:   metrics,
			Logger:    opts.Logger,
			KafkaOpts: opts.KafkaOpts,
			Now:       opts.Now,
		})
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("%s[%d]: %w", EnvLookups, i, err)
		}
		r.lookups = append(r.lookups, l)
		r.keyPaths = append(r.keyPaths, spec.Key)
		index[spec.Name] = i
	}
	if err := r.compile(parsed.rules, index); err != nil {
		r.Close()
		return nil, err
	}

	opts.Logger.Info("enrichment configured",
		"rules", len(parsed.rules), "lookups", len(r.lookups),
		"privacy_mode", cfg.PrivacyMode, "redact_patterns", len(r.redact))
	return r, nil
}

func (r *Rules) compile(specs []RuleSpec, index map[string]int) error {
	for i := range specs {
		spec := &specs[i]
		when, err := compileCondition(spec.When)
		if err != nil {
			return fmt.Errorf("%s[%d].when: %w", EnvRules, i, err)
		}
		if spec.Privacy {
			if when == nil {
				r.privacyAll = true
			}
			r.privacyWhen = append(r.privacyWhen, when)
			continue
		}

		ru, err := compileRule(spec, index)
		if err != nil {
			return fmt.Errorf("%s[%d]: %w", EnvRules, i, err)
		}
		ru.when = when
		r.rules = append(r.rules, ru)
	}
	return nil
}

func compileRule(spec *RuleSpec, index map[string]int) (rule, error) {
	ru := rule{target: parseTarget(spec.Set), always: spec.Mode == ModeAlways, lookupIndex: -1}
	switch {
	case len(spec.Value) > 0:
		v, err := decodeValue(spec.Value)
		if err != nil {
			return ru, err
		}
		ru.static, ru.hasStatic = v, true
	case spec.Record != "":
		ru.record = spec.Record
	case spec.Template != "":
		tmpl, err := parseTemplate(spec.Template)
		if err != nil {
			return ru, err
		}
		for j := range tmpl.parts {
			if p := &tmpl.parts[j]; p.lookupName != "" {
				p.lookupIndex = index[p.lookupName]
				ru.needs |= 1 << p.lookupIndex
			}
		}
		ru.tmpl = tmpl
	default:
		ru.lookupIndex = index[spec.Lookup]
		ru.field = spec.Field
		ru.needs = 1 << ru.lookupIndex
	}
	return ru, nil
}

func compileCondition(c *Condition) (*condition, error) {
	if c == nil {
		return nil, nil
	}
	want, err := decodeValue(c.Equals)
	if err != nil {
		return nil, err
	}
	return &condition{path: c.Record, want: want}, nil
}

func parseTarget(set string) target {
	switch {
	case set == targetDistinctID:
		return target{kind: targetDistinct}
	case len(set) > len(targetGroupPrefix) && set[:len(targetGroupPrefix)] == targetGroupPrefix:
		return target{kind: targetGroup, name: set[len(targetGroupPrefix):]}
	}
	return target{kind: targetProperty, name: set}
}

// Enrich applies the rules to ev. It calls done before it returns when no
// lookup has to wait, and otherwise from another goroutine once every
// lookup returned or reached its deadline. It reads rec until it calls
// done. A failed or timed-out lookup leaves its targets unset and sets
// event.PropPartial, and a lookup key that is absent from the record or
// not found by the lookup leaves them unset without that mark.
func (r *Rules) Enrich(ctx context.Context, ev *event.Event, rec Record, done func()) {
	if ev.Properties == nil {
		ev.Properties = make(map[string]any)
	}
	for k, v := range r.static {
		ev.Properties[k] = v
	}
	r.protect(ev, rec)

	need := r.neededLookups(ev, rec)
	if need == 0 {
		r.apply(ev, rec, nil)
		done()
		return
	}
	r.enrichWithLookups(ctx, ev, rec, done, need)
}

// stackLookups is how many lookups an event can use without a heap
// allocation for their results on the path where no lookup waits.
const stackLookups = 8

type pendingLookup struct {
	index   int
	pending *lookup.Pending
}

func (r *Rules) enrichWithLookups(ctx context.Context, ev *event.Event, rec Record, done func(), need uint64) {
	var resultBuf [stackLookups]lookup.Result
	var pendingBuf [stackLookups]pendingLookup
	var results []lookup.Result
	if len(r.lookups) <= stackLookups {
		results = resultBuf[:len(r.lookups)]
	} else {
		results = make([]lookup.Result, len(r.lookups))
	}

	pendings := pendingBuf[:0]
	for i, l := range r.lookups {
		if need&(1<<i) == 0 {
			continue
		}
		key, ok := r.lookupKey(i, rec)
		if !ok {
			continue // results[i] stays "not found"
		}
		res, p := l.Start(key)
		if p != nil {
			pendings = append(pendings, pendingLookup{index: i, pending: p})
			continue
		}
		results[i] = res
	}

	if len(pendings) == 0 {
		r.apply(ev, rec, results)
		done()
		return
	}
	r.finishLater(ctx, ev, rec, done, slices.Clone(results), slices.Clone(pendings))
}

// finishLater waits for the pending lookups in a new goroutine, so that a
// slow lookup holds up only its own event.
func (r *Rules) finishLater(ctx context.Context, ev *event.Event, rec Record, done func(),
	results []lookup.Result, pendings []pendingLookup) {
	if !r.track() {
		for _, p := range pendings {
			results[p.index] = lookup.Result{Err: lookup.ErrClosed}
		}
		r.apply(ev, rec, results)
		done()
		return
	}

	go func() {
		defer r.wg.Done()
		// Every deadline counts from Start, so waiting in turn takes no
		// longer than the longest deadline.
		for _, p := range pendings {
			results[p.index] = p.pending.Wait(ctx)
		}
		r.apply(ev, rec, results)
		done()
	}()
}

// neededLookups returns the lookups of the rules that may set something.
func (r *Rules) neededLookups(ev *event.Event, rec Record) uint64 {
	var need uint64
	for i := range r.rules {
		ru := &r.rules[i]
		if ru.needs == 0 || need&ru.needs == ru.needs {
			continue
		}
		if ru.when.match(rec) && (ru.always || !present(ev, ru.target)) {
			need |= ru.needs
		}
	}
	return need
}

// lookupKey returns the key of lookup i from the record. A missing, null,
// empty or non-scalar key means there is nothing to look up.
func (r *Rules) lookupKey(i int, rec Record) (string, bool) {
	v, ok := rec.Field(r.keyPaths[i])
	if !ok {
		return "", false
	}
	key, ok := lookup.String(v)
	return key, ok && key != ""
}

// apply runs the rules in order. After a failed lookup, later rules for the
// same target are skipped too, so that a fallback rule cannot stand in for
// a value that exists but could not be fetched.
func (r *Rules) apply(ev *event.Event, rec Record, results []lookup.Result) {
	var failedTargets []target
	for i := range r.rules {
		ru := &r.rules[i]
		if !ru.when.match(rec) || (!ru.always && present(ev, ru.target)) || slices.Contains(failedTargets, ru.target) {
			continue
		}
		v, res := ru.resolve(rec, results)
		switch res {
		case resolved:
			r.set(ev, ru.target, v)
		case failed:
			failedTargets = append(failedTargets, ru.target)
		}
	}
	if len(failedTargets) > 0 {
		ev.Properties[event.PropPartial] = true
	}
}

func (ru *rule) resolve(rec Record, results []lookup.Result) (any, resolution) {
	switch {
	case ru.hasStatic:
		return cloneJSON(ru.static), resolved
	case ru.record != "":
		return fromRecord(rec, ru.record)
	case ru.tmpl != nil:
		return ru.tmpl.render(rec, results)
	}
	v, res := fromLookup(resultAt(results, ru.lookupIndex), ru.field)
	return cloneJSON(v), res
}

func fromRecord(rec Record, path string) (any, resolution) {
	v, ok := rec.Field(path)
	if !ok || v == nil {
		return nil, unresolved
	}
	return v, resolved
}

func fromLookup(res lookup.Result, path string) (any, resolution) {
	switch {
	case res.Err != nil:
		return nil, failed
	case !res.Found:
		return nil, unresolved
	}
	v, ok := lookup.Field(res.Value, path)
	if !ok || v == nil {
		return nil, unresolved
	}
	return v, resolved
}

// resultAt returns results[i], or "not found" when the lookup was not
// started.
func resultAt(results []lookup.Result, i int) lookup.Result {
	if i < 0 || i >= len(results) {
		return lookup.Result{}
	}
	return results[i]
}

func (r *Rules) set(ev *event.Event, t target, v any) {
	if t.kind == targetProperty {
		ev.Properties[t.name] = v
		return
	}
	s, ok := lookup.String(v)
	if !ok || s == "" {
		r.logger.Debug("skipping rule value that is not a string or number", "target", t.name, "uuid", ev.UUID)
		return
	}
	if t.kind == targetDistinct {
		ev.DistinctID = s
		return
	}
	if groups := groupsOf(ev, true); groups != nil {
		groups[t.name] = s
	}
}

// present reports whether ev already has a value for t.
func present(ev *event.Event, t target) bool {
	switch t.kind {
	case targetDistinct:
		return ev.DistinctID != ""
	case targetGroup:
		v, ok := groupsOf(ev, false)[t.name]
		return ok && v != nil && v != ""
	}
	v, ok := ev.Properties[t.name]
	return ok && v != nil
}

// groupsOf returns the event's $groups as a map[string]any, converting it
// in place from a map[string]string or raw JSON. With create, it adds an
// empty map when the event has none. It returns nil for a $groups value of
// any other type, which is left as it is.
func groupsOf(ev *event.Event, create bool) map[string]any {
	switch g := ev.Properties[propGroups].(type) {
	case map[string]any:
		return g
	case map[string]string:
		m := make(map[string]any, len(g))
		for k, v := range g {
			m[k] = v
		}
		ev.Properties[propGroups] = m
		return m
	case json.RawMessage:
		v, err := decodeValue(g)
		m, ok := v.(map[string]any)
		if err != nil || !ok {
			return nil
		}
		ev.Properties[propGroups] = m
		return m
	case nil:
		if !create {
			return nil
		}
		m := make(map[string]any)
		ev.Properties[propGroups] = m
		return m
	}
	return nil
}

func (c *condition) match(rec Record) bool {
	if c == nil {
		return true
	}
	got, ok := rec.Field(c.path)
	return ok && equalJSON(got, c.want)
}

// equalJSON compares a record value with a condition's scalar value.
func equalJSON(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case string:
		s, ok := got.(string)
		return ok && s == w
	case bool:
		b, ok := got.(bool)
		return ok && b == w
	case json.Number:
		wf, err := w.Float64()
		gf, ok := number(got)
		return err == nil && ok && gf == wf
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// cloneJSON copies objects and arrays, so that events never share a map or
// slice with a cached lookup result, a static value or each other.
func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = cloneJSON(e)
		}
		return s
	}
	return v
}

func (r *Rules) track() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// Close releases the events still waiting for lookups, which go out
// without the lookups' properties, and stops the lookups. It waits until
// their goroutines have ended. Enrich calls after Close finish at once and
// mark events that needed a lookup as partial.
func (r *Rules) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()

	// Closing the lookups first ends every Pending.Wait, so the waiting
	// goroutines finish.
	for _, l := range r.lookups {
		l.Close()
	}
	r.wg.Wait()
}
