package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthog/posthog-go"

	"github.com/llm-enricher/enricher/internal/event"
)

// PostHogConfig configures a PostHog sink.
type PostHogConfig struct {
	// APIKey is the project API key. Required.
	APIKey string
	// Host is the PostHog host, such as https://eu.i.posthog.com.
	Host string
	// Gzip compresses each request body.
	Gzip bool
	// Clients is how many posthog-go clients send batches side by side,
	// events spread over them in turn. Each client has its own queue of
	// MaxQueue events and its own batching goroutine. Zero means one.
	Clients int
	// BatchSize is the maximum number of events in one request.
	BatchSize int
	// FlushInterval is the longest time an event waits for its batch to fill.
	FlushInterval time.Duration
	// MaxQueue bounds posthog-go's queue of events waiting for a batch.
	// Set it at least as high as the pipeline's in-flight limit, so that a
	// full queue stays an exception.
	MaxQueue int
	// Transport sends the HTTP requests; nil means posthog-go's default.
	Transport http.RoundTripper
	// RetryMin and RetryMax bound the backoff between delivery rounds of an
	// event, after posthog-go's own retries are used up.
	RetryMin, RetryMax time.Duration
	// Logger receives retry warnings and posthog-go's messages (at Debug).
	Logger *slog.Logger
	// OnDuplicate, when set, is called for each event completed without
	// being sent, because an event with its uuid was accepted while it
	// waited.
	OnDuplicate func()
}

// PostHog delivers events with posthog-go and learns from its callbacks
// which ones PostHog accepted.
//
// posthog-go gives up on an event after a few retries, and drops it when
// its queue is full; PostHog does not. It keeps each event until PostHog
// accepts it, rejects it alone, or the sink closes.
type PostHog struct {
	cfg PostHogConfig
	log *slog.Logger

	// batched send events in batches, each event to the next client in
	// turn. single sends one event per request, to find which event of a
	// rejected batch PostHog objects to.
	batched []posthog.Client
	single  posthog.Client
	next    atomic.Uint64

	mu      sync.Mutex
	closing bool
	// owners maps a uuid to the one event with that uuid that is in
	// posthog-go or waiting to retry. Callbacks identify events by uuid, so
	// an event with a uuid already in flight waits in followers.
	owners    map[string]*pending
	followers map[string][]*pending

	authErr  atomic.Pointer[error]
	warnings *limiter
}

type pending struct {
	ev       *event.Event
	done     func(error)
	attempt  int
	isolated bool
	timer    *time.Timer
}

// NewPostHog starts a PostHog sink.
func NewPostHog(cfg PostHogConfig) (*PostHog, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &PostHog{
		cfg:       cfg,
		log:       cfg.Logger,
		owners:    make(map[string]*pending),
		followers: make(map[string][]*pending),
		warnings:  newLimiter(10 * time.Second),
	}
	for range max(1, cfg.Clients) {
		c, err := s.newClient(cfg.BatchSize, false)
		if err != nil {
			s.closeClients()
			return nil, err
		}
		s.batched = append(s.batched, c)
	}
	var err error
	if s.single, err = s.newClient(1, true); err != nil {
		s.closeClients()
		return nil, err
	}
	return s, nil
}

func (s *PostHog) closeClients() {
	for _, c := range s.batched {
		c.Close()
	}
}

func (s *PostHog) newClient(batchSize int, single bool) (posthog.Client, error) {
	pc := posthog.Config{
		Endpoint:     s.cfg.Host,
		Interval:     s.cfg.FlushInterval,
		BatchSize:    batchSize,
		MaxQueueSize: s.cfg.MaxQueue,
		Transport:    s.cfg.Transport,
		Logger:       sdkLogger{s.log},
		Callback:     callback{s},
	}
	if s.cfg.Gzip {
		pc.Compression = posthog.CompressionGzip
	}
	c, err := posthog.NewWithConfig(s.cfg.APIKey, pc)
	if err != nil {
		// posthog-go's config errors show field values, and the key is
		// not a field of its Config.
		return nil, fmt.Errorf("creating PostHog client: %w", err)
	}
	return c, nil
}

// Send implements Sink.
func (s *PostHog) Send(ev *event.Event, done func(error)) {
	p := &pending{ev: ev, done: done}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		done(ErrClosed)
		return
	}
	if _, busy := s.owners[ev.UUID]; busy {
		s.followers[ev.UUID] = append(s.followers[ev.UUID], p)
		s.mu.Unlock()
		return
	}
	s.owners[ev.UUID] = p
	s.mu.Unlock()
	s.enqueue(p)
}

// Ready returns an error while PostHog rejects the API key.
func (s *PostHog) Ready() error {
	if err := s.authErr.Load(); err != nil {
		return *err
	}
	return nil
}

func (s *PostHog) enqueue(p *pending) {
	client := s.batched[0]
	if n := uint64(len(s.batched)); n > 1 {
		client = s.batched[s.next.Add(1)%n]
	}
	if p.isolated {
		client = s.single
	}
	err := client.Enqueue(posthog.Capture{
		Uuid:       p.ev.UUID,
		DistinctId: p.ev.DistinctID,
		Event:      p.ev.Name,
		Timestamp:  p.ev.Timestamp,
		Properties: p.ev.Properties,
	})
	switch {
	case err == nil:
	case errors.Is(err, posthog.ErrQueueFull):
		// Not a failure of the event: the queue drains as batches go out.
		s.retryLater(p, err, 0)
	case errors.Is(err, posthog.ErrClosed):
		s.finish(p, ErrClosed)
	default:
		s.finish(p, fmt.Errorf("%w: %v", ErrRejected, err))
	}
}

func (s *PostHog) delivered(uuid string) {
	if s.authErr.Swap(nil) != nil {
		s.log.Info("PostHog accepts the API key again")
	}
	if p := s.owner(uuid); p != nil {
		s.finish(p, nil)
	}
}

func (s *PostHog) failed(uuid string, err error) {
	p := s.owner(uuid)
	if p == nil {
		return
	}
	cls, status := classify(err)
	switch {
	case cls == unauthorized:
		authErr := fmt.Errorf("PostHog rejected the API key (HTTP %d): check ENRICHER_POSTHOG_API_KEY and ENRICHER_POSTHOG_HOST", status)
		if s.authErr.Swap(&authErr) == nil {
			s.log.Error("PostHog rejected the API key; events wait until it is accepted", "status", status)
		}
		s.retryLater(p, err, status)
	case cls == rejected && !p.isolated:
		// PostHog rejects a whole batch for one bad event: send each
		// event of the batch alone to find it.
		p.isolated = true
		s.enqueue(p)
	case cls == rejected:
		s.finish(p, fmt.Errorf("%w: PostHog responded %s", ErrRejected, errText(err)))
	default:
		s.retryLater(p, err, status)
	}
}

func (s *PostHog) owner(uuid string) *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owners[uuid]
}

// retryLater sends p again after a backoff that grows with each attempt.
func (s *PostHog) retryLater(p *pending, cause error, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		go s.finish(p, ErrClosed)
		return
	}
	p.attempt++
	delay := backoff(p.attempt, s.cfg.RetryMin, s.cfg.RetryMax)
	if n, ok := s.warnings.allow(status); ok {
		s.log.Warn("delivery to PostHog failed; retrying",
			"err", errText(cause), "status", status, "uuid", p.ev.UUID,
			"attempt", p.attempt, "retry_in", delay, "suppressed", n)
	}
	p.timer = time.AfterFunc(delay, func() { s.enqueue(p) })
}

// finish completes p and hands its uuid to the next event waiting for it.
// When PostHog accepted p, the events waiting for its uuid are complete
// too: their uuid is stored, and sending them would only add a duplicate.
func (s *PostHog) finish(p *pending, err error) {
	s.mu.Lock()
	if s.owners[p.ev.UUID] != p {
		s.mu.Unlock()
		return
	}
	var next *pending
	var skipped []*pending
	if err == nil {
		skipped = s.followers[p.ev.UUID]
		delete(s.followers, p.ev.UUID)
	}
	if queue := s.followers[p.ev.UUID]; len(queue) > 0 {
		next = queue[0]
		if len(queue) == 1 {
			delete(s.followers, p.ev.UUID)
		} else {
			s.followers[p.ev.UUID] = queue[1:]
		}
		s.owners[p.ev.UUID] = next
	} else {
		delete(s.owners, p.ev.UUID)
	}
	closing := s.closing
	s.mu.Unlock()

	p.done(err)
	for _, f := range skipped {
		if s.cfg.OnDuplicate != nil {
			s.cfg.OnDuplicate()
		}
		f.done(nil)
	}
	switch {
	case next != nil && closing:
		s.finish(next, ErrClosed)
	case next != nil:
		s.enqueue(next)
	}
}

// Close implements Sink. Events waiting to retry are completed with
// ErrClosed at once; queued and in-flight batches get until ctx ends.
func (s *PostHog) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	var waiting []*pending
	for _, p := range s.owners {
		if p.timer != nil && p.timer.Stop() {
			waiting = append(waiting, p)
		}
	}
	s.mu.Unlock()
	for _, p := range waiting {
		s.finish(p, ErrClosed)
	}

	// The clients flush side by side, so that each has until ctx ends
	// rather than what the ones before it left.
	clients := slices.Concat(s.batched, []posthog.Client{s.single})
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { errs[i] = c.CloseWithContext(ctx) })
	}
	wg.Wait()

	// Whatever posthog-go did not report by now it never will.
	s.mu.Lock()
	var left []*pending
	for _, p := range s.owners {
		left = append(left, p)
	}
	s.mu.Unlock()
	for _, p := range left {
		s.finish(p, ErrClosed)
	}
	return errors.Join(errs...)
}

// callback routes posthog-go's delivery reports to the sink.
type callback struct{ s *PostHog }

func (c callback) Success(m posthog.APIMessage) {
	if uuid, ok := uuidOf(m); ok {
		c.s.delivered(uuid)
	}
}

func (c callback) Failure(m posthog.APIMessage, err error) {
	if uuid, ok := uuidOf(m); ok {
		c.s.failed(uuid, err)
	}
}

func uuidOf(m posthog.APIMessage) (string, bool) {
	switch m := m.(type) {
	case posthog.CaptureInApi:
		return m.Uuid, true
	case *posthog.CaptureInApi:
		return m.Uuid, true
	}
	return "", false
}

// backoff returns the wait before the given attempt: exponential from min,
// capped at max, with jitter so that events retried together spread out.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}

// sdkLogger sends posthog-go's log lines to slog at Debug. The sink logs
// every failure it acts on itself, so the SDK's own lines would repeat them.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Debugf(format string, args ...any) { l.logf(format, args...) }
func (l sdkLogger) Logf(format string, args ...any)   { l.logf(format, args...) }
func (l sdkLogger) Warnf(format string, args ...any)  { l.logf(format, args...) }
func (l sdkLogger) Errorf(format string, args ...any) { l.logf(format, args...) }

func (l sdkLogger) logf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...), "component", "posthog-go")
	}
}
