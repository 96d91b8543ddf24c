// Package lookup resolves a key taken from a record to a JSON value, from an
// HTTP API behind a bounded cache, from a compacted Kafka topic, or from a
// local file.
//
// An HTTP lookup caches found values for a TTL and "not found" results and
// failures for a shorter negative TTL. Only one upstream request per key is
// in flight at a time, and an expired value is served for up to MaxStale
// while one background request refreshes it. Kafka and file lookups hold
// their whole table in memory, so they return results without waiting once loaded.
package lookup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/singleflight"
)

// Errors that a Result carries when no upstream response arrived.
var (
	// ErrDeadline means the lookup deadline passed before the result arrived.
	ErrDeadline = errors.New("lookup deadline exceeded")
	// ErrClosed means the lookup was closed.
	ErrClosed = errors.New("lookup closed")
)

// warnInterval is the minimum time between two warnings about failures of
// the same lookup. Failures are counted by the metrics in between.
const warnInterval = 10 * time.Second

// Result is the outcome of one lookup.
type Result struct {
	// Value is the JSON value found for the key.
	Value any
	// Found is true when the source holds a value for the key.
	Found bool
	// Err is non-nil when the lookup failed or timed out, in which case the
	// key may or may not exist.
	Err error
}

// Options are the dependencies of a lookup.
type Options struct {
	// Metrics receives the lookup's counters. Nil means the metrics are
	// kept but not registered anywhere.
	Metrics *Metrics
	// Logger receives starts, stops and failures. Nil discards them.
	Logger *slog.Logger
	// KafkaOpts are the franz-go options of a Kafka lookup's client, such
	// as kgo.SeedBrokers and the security options.
	KafkaOpts []kgo.Opt
	// Now returns the time used for cache expiry. Nil means time.Now.
	// Tests set it to expire entries without sleeping. Deadlines and
	// timeouts always use the real clock.
	Now func() time.Time
}

// Lookup resolves keys from one source. Its methods are safe for concurrent
// use.
type Lookup struct {
	name     string
	deadline time.Duration
	now      func() time.Time
	metrics  lookupMetrics
	logger   *slog.Logger
	warned   atomic.Int64 // unix nanoseconds of the last failure warning

	// An HTTP lookup has a source and a cache. A Kafka or file lookup has
	// a table instead.
	source   *httpSource
	cache    *expirable.LRU[string, *entry]
	flights  singleflight.Group
	ttl      time.Duration
	negTTL   time.Duration
	maxStale time.Duration
	table    table

	ctx    context.Context // cancelled by Close, to stop upstream requests
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	done   chan struct{} // closed by Close, to release waiting events
	wg     sync.WaitGroup
}

// table is an in-memory copy of a source, kept current in the background.
type table interface {
	get(key string) (any, bool)
	// ready is closed once the table holds the whole source.
	ready() <-chan struct{}
	close()
}

// entry is one cached result. It is replaced, never changed, except for
// the refreshing flag.
type entry struct {
	value      any
	found      bool
	err        error
	freshUntil time.Time
	staleUntil time.Time // found values only: served stale until then
	retryAt    time.Time // the earliest refresh after a failed refresh
	refreshing atomic.Bool
}

// New creates a lookup from a spec that passed ApplyDefaults and Validate.
// A file lookup reads its file before New returns. A Kafka lookup starts
// reading its topic in the background.
func New(spec Spec, opts Options) (*Lookup, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, err
		}
		opts.Metrics = m
	}

	l := &Lookup{
		name:     spec.Name,
		deadline: time.Duration(spec.Deadline),
		now:      opts.Now,
		metrics:  opts.Metrics.forLookup(spec.Name),
		logger:   opts.Logger.With("lookup", spec.Name),
		done:     make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())

	var err error
	switch {
	case spec.HTTP != nil:
		err = l.initHTTP(spec)
	case spec.Kafka != nil:
		l.table, err = startKafkaTable(spec.Kafka.Topic, opts.KafkaOpts, l.logger)
	case spec.File != nil:
		l.table, err = openFileTable(*spec.File, l.logger)
	default:
		err = errors.New("no source set")
	}
	if err != nil {
		l.cancel()
		return nil, fmt.Errorf("creating lookup %q: %w", spec.Name, err)
	}
	return l, nil
}

func (l *Lookup) initHTTP(spec Spec) error {
	source, err := newHTTPSource(*spec.HTTP)
	if err != nil {
		return err
	}
	l.source = source
	l.ttl = time.Duration(spec.Cache.TTL)
	l.negTTL = time.Duration(spec.Cache.NegativeTTL)
	l.maxStale = time.Duration(*spec.Cache.MaxStale)
	// The cache drops an entry once no rule can use it: after TTL plus
	// MaxStale, the longest any entry is served. Each entry carries its
	// own shorter limits, which Start checks on the lookup's clock.
	// NOTE: golang-lru v2.0.7 starts a goroutine per expirable cache that
	// never ends, so each HTTP lookup leaves one goroutine behind after
	// Close.
	l.cache = expirable.NewLRU[string, *entry](spec.Cache.MaxEntries, nil, l.ttl+l.maxStale)
	return nil
}

// Name returns the lookup's name.
func (l *Lookup) Name() string { return l.name }

// Start begins a lookup of key. When the result is at hand (a cached
// result, a stale value being refreshed, or a loaded table) it returns the
// result and a nil Pending. Otherwise it returns a Pending to wait on.
func (l *Lookup) Start(key string) (Result, *Pending) {
	if l.isClosed() {
		l.metrics.errors.Inc()
		return Result{Err: ErrClosed}, nil
	}
	if l.table != nil {
		return l.startTable(key)
	}

	now := l.now()
	if e, ok := l.cache.Get(key); ok {
		if now.Before(e.freshUntil) {
			if e.err != nil {
				l.metrics.errors.Inc()
				return Result{Err: e.err}, nil
			}
			l.metrics.hits.Inc()
			return Result{Value: e.value, Found: e.found}, nil
		}
		if e.found && now.Before(e.staleUntil) {
			l.metrics.stale.Inc()
			if !now.Before(e.retryAt) && e.refreshing.CompareAndSwap(false, true) {
				l.refresh(key)
			}
			return Result{Value: e.value, Found: true}, nil
		}
	}

	l.metrics.misses.Inc()
	flight := l.flights.DoChan(key, func() (any, error) { return l.fetch(key), nil })
	return Result{}, &Pending{l: l, flight: flight, deadline: time.Now().Add(l.deadline)}
}

func (l *Lookup) startTable(key string) (Result, *Pending) {
	ready := l.table.ready()
	select {
	case <-ready:
		l.metrics.hits.Inc()
		return l.tableResult(key), nil
	default:
	}
	l.metrics.misses.Inc()
	return Result{}, &Pending{l: l, key: key, ready: ready, deadline: time.Now().Add(l.deadline)}
}

func (l *Lookup) tableResult(key string) Result {
	v, ok := l.table.get(key)
	return Result{Value: v, Found: ok}
}

// refresh fetches key again in the background while its stale value is
// served.
func (l *Lookup) refresh(key string) {
	if !l.track() {
		return
	}
	go func() {
		defer l.wg.Done()
		l.flights.Do(key, func() (any, error) { return l.fetch(key), nil })
	}()
}

// fetch requests key from the upstream and caches the result. It runs once per
// key at a time, in a goroutine of the singleflight group.
func (l *Lookup) fetch(key string) Result {
	if !l.track() {
		return Result{Err: ErrClosed}
	}
	defer l.wg.Done()

	start := time.Now()
	value, found, err := l.source.fetch(l.ctx, key)
	elapsed := time.Since(start).Seconds()
	now := l.now()

	// NOTE: the cache is updated before the metrics, so that a test that
	// finds the request in the metrics also finds its result cached.
	switch {
	case err != nil:
		l.cache.Add(key, l.failedEntry(key, err, now))
		l.metrics.failed.Observe(elapsed)
		l.warn("lookup request failed; events go out without its properties until it succeeds", err)
		return Result{Err: err}
	case !found:
		l.cache.Add(key, &entry{freshUntil: now.Add(l.negTTL)})
		l.metrics.notFound.Observe(elapsed)
		return Result{}
	default:
		fresh := now.Add(l.ttl)
		l.cache.Add(key, &entry{value: value, found: true, freshUntil: fresh, staleUntil: fresh.Add(l.maxStale)})
		l.metrics.found.Observe(elapsed)
		return Result{Value: value, Found: true}
	}
}

// failedEntry returns the entry to cache after a failed request. A stale
// value keeps being served until its MaxStale ends, and the next refresh
// waits for the negative TTL. Without one, the failure itself is cached for
// the negative TTL, so that a failing upstream gets one request per key per
// negative TTL.
func (l *Lookup) failedEntry(key string, err error, now time.Time) *entry {
	if prev, ok := l.cache.Peek(key); ok && prev.found && now.Before(prev.staleUntil) {
		return &entry{
			value:      prev.value,
			found:      true,
			freshUntil: prev.freshUntil,
			staleUntil: prev.staleUntil,
			retryAt:    now.Add(l.negTTL),
		}
	}
	return &entry{err: err, freshUntil: now.Add(l.negTTL)}
}

// warn logs a failure at most once per warnInterval.
func (l *Lookup) warn(msg string, err error) {
	now := time.Now().UnixNano()
	last := l.warned.Load()
	if now-last < int64(warnInterval) || !l.warned.CompareAndSwap(last, now) {
		return
	}
	l.logger.Warn(msg, "err", err)
}

// track counts a background goroutine so that Close can wait for it. It
// returns false once the lookup is closed.
func (l *Lookup) track() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	return true
}

func (l *Lookup) isClosed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Close stops the lookup's background work, cancels its upstream requests,
// releases every waiting Pending with ErrClosed, and waits until its
// goroutines have ended.
func (l *Lookup) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()

	l.cancel()
	if l.table != nil {
		l.table.close()
	}
	l.wg.Wait()
	if l.source != nil {
		l.source.client.CloseIdleConnections()
	}
	l.logger.Debug("lookup closed")
}

// Pending is a lookup whose result is not at hand yet.
type Pending struct {
	l        *Lookup
	key      string
	flight   <-chan singleflight.Result // HTTP lookups
	ready    <-chan struct{}            // table lookups
	deadline time.Time
}

// Wait returns the result, or a failed Result once the lookup deadline
// (counted from Start), ctx or Close ends the wait. An upstream request
// that outlives the deadline goes on and caches its result for later events.
func (p *Pending) Wait(ctx context.Context) Result {
	timer := time.NewTimer(time.Until(p.deadline))
	defer timer.Stop()

	var res Result
	select {
	case r := <-p.flight:
		res = r.Val.(Result)
	case <-p.ready:
		res = p.l.tableResult(p.key)
	case <-timer.C:
		res = Result{Err: ErrDeadline}
		p.l.warn("lookup deadline exceeded; events go out without its properties", res.Err)
	case <-ctx.Done():
		res = Result{Err: fmt.Errorf("waiting for lookup: %w", context.Cause(ctx))}
	case <-p.l.done:
		res = Result{Err: ErrClosed}
	}
	if res.Err != nil {
		p.l.metrics.errors.Inc()
	}
	return res
}
