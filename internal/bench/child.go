package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/posthog/posthog-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/llm-enricher/enricher/internal/app"
	"github.com/llm-enricher/enricher/internal/config"
	"github.com/llm-enricher/enricher/internal/event"
	"github.com/llm-enricher/enricher/internal/record"
)

// Workloads that a child process runs.
const (
	ModeBare     = "bare"
	ModePostHog  = "posthog"
	ModeNaive    = "naive"
	ModeEnricher = "enricher"
)

// ChildSpec is the workload of a child process. The parent passes it as
// JSON in the environment variable ChildEnv.
type ChildSpec struct {
	Mode    string
	Brokers []string
	Topic   string
	Group   string
	// Target is the count of records consumed (bare) or events delivered
	// (the others) at which the run ends; Warm is the count at which the
	// measurement window opens.
	Target, Warm int64
	CaptureURL   string
	APIKey       string
	// Env is the enricher's configuration, ENRICHER_* variables.
	Env map[string]string
	// Prebuilt is how many distinct events posthog mode builds before it
	// starts, and then cycles through.
	Prebuilt int
	// Timeout bounds the run; a run that times out reports what it reached.
	Timeout time.Duration
	// CPUProfile, when set, is a file for a CPU profile of the window.
	// Heap, block and mutex profiles at the window's end go beside it.
	CPUProfile string
}

// ChildResult is the outcome of a child, printed on its last line of
// standard output.
type ChildResult struct {
	// Reached is the count at the end: records consumed or events
	// delivered.
	Reached int64
	// WindowStart is when the count reached Warm, and Window the time from
	// then to Target.
	WindowStart time.Time
	Window      time.Duration
	// CPU is the user plus system CPU time of the window.
	CPU time.Duration
	// Mallocs counts the heap allocations of the window.
	Mallocs uint64
	// PeakRSS is the process's peak resident set size in bytes, read as
	// it exits.
	PeakRSS int64
	// TimedOut is set when Target was not reached within Timeout.
	TimedOut bool
	Err      string
}

// ChildEnv is the environment variable that turns a bench process into a
// child and carries its ChildSpec.
const ChildEnv = "ENRICHER_BENCH_CHILD"

// resultPrefix starts the line that carries a child's result.
const resultPrefix = "BENCH-RESULT "

// RunChild runs the ChildSpec in ChildEnv and prints its result. It returns
// false when the process is not a child.
func RunChild(stdout io.Writer) bool {
	raw := os.Getenv(ChildEnv)
	if raw == "" {
		return false
	}
	var spec ChildSpec
	res := ChildResult{}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		res.Err = fmt.Sprintf("decoding %s: %v", ChildEnv, err)
	} else if err := runChild(spec, &res); err != nil {
		res.Err = err.Error()
	}
	res.PeakRSS = peakRSS()
	b, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s%s\n", resultPrefix, b)
	return true
}

func runChild(spec ChildSpec, res *ChildResult) error {
	ctx, cancel := context.WithTimeout(context.Background(), spec.Timeout)
	defer cancel()
	w := &window{spec: spec, res: res}
	switch spec.Mode {
	case ModeBare:
		return runBare(ctx, spec, w)
	case ModePostHog:
		return runPostHog(ctx, spec, w)
	case ModeNaive:
		return runNaive(ctx, spec, w)
	case ModeEnricher:
		return runEnricher(ctx, spec, w)
	}
	return fmt.Errorf("unknown mode %q", spec.Mode)
}

// window measures CPU time, allocations and wall time between the Warm and
// Target counts.
type window struct {
	spec    ChildSpec
	res     *ChildResult
	start   time.Time
	cpu     time.Duration
	mallocs uint64
	opened  bool
}

// observe is called with each new count, and reports true once Target is
// reached.
func (w *window) observe(n int64) bool {
	w.res.Reached = n
	if !w.opened && n >= w.spec.Warm {
		w.opened = true
		w.start, w.cpu, w.mallocs = time.Now(), cpuTime(), mallocs()
		if w.spec.CPUProfile != "" {
			runtime.SetBlockProfileRate(int(100 * time.Microsecond))
			runtime.SetMutexProfileFraction(10)
			if f, err := os.Create(w.spec.CPUProfile); err == nil {
				pprof.StartCPUProfile(f)
			}
		}
	}
	if !w.opened || n < w.spec.Target {
		return false
	}
	w.res.WindowStart = w.start
	w.res.Window = time.Since(w.start)
	w.res.CPU = cpuTime() - w.cpu
	w.res.Mallocs = mallocs() - w.mallocs
	w.writeProfiles()
	return true
}

// timedOut ends a window that never reached Target.
func (w *window) timedOut() {
	w.res.TimedOut = true
	if w.opened {
		w.writeProfiles()
	}
}

// writeProfiles ends the CPU profile and writes heap, block and mutex
// profiles beside it.
func (w *window) writeProfiles() {
	if w.spec.CPUProfile == "" {
		return
	}
	pprof.StopCPUProfile()
	base := strings.TrimSuffix(w.spec.CPUProfile, ".cpu.pprof")
	for _, name := range []string{"heap", "block", "mutex"} {
		if f, err := os.Create(base + "." + name + ".pprof"); err == nil {
			pprof.Lookup(name).WriteTo(f, 0)
			f.Close()
		}
	}
}

// pollCapture observes the capture server's event count every 10 ms until
// the window closes or ctx ends.
func (w *window) pollCapture(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.timedOut()
			return nil
		case <-t.C:
		}
		n, err := captureCount(ctx, w.spec.CaptureURL)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return err
		}
		if w.observe(n) {
			return nil
		}
	}
}

func captureCount(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/bench/count", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading the capture count: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(b), 10, 64)
}

func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// runBare polls records and discards them: the Kafka ceiling.
func runBare(ctx context.Context, spec ChildSpec, w *window) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(spec.Brokers...),
		kgo.ConsumeTopics(spec.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	var n int64
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			w.timedOut()
			return nil
		}
		n += int64(fetches.NumRecords())
		if w.observe(n) {
			return nil
		}
	}
}

// runPostHog enqueues pre-built events into one posthog-go client with its
// default settings: the delivery ceiling. The events are decoded from the
// first Prebuilt records before the clock starts, and each enqueue gets a
// new uuid.
func runPostHog(ctx context.Context, spec ChildSpec, w *window) error {
	events, err := prebuild(ctx, spec)
	if err != nil {
		return err
	}
	uuids := make([]string, spec.Target+int64(len(events)))
	for i := range uuids {
		uuids[i] = uuid.NewString()
	}
	client, err := posthog.NewWithConfig(spec.APIKey, posthog.Config{Endpoint: spec.CaptureURL})
	if err != nil {
		return err
	}
	defer client.Close()

	go func() {
		for i := 0; ctx.Err() == nil && i < len(uuids); i++ {
			msg := events[i%len(events)]
			msg.Uuid = uuids[i]
			enqueueRetrying(ctx, client, msg)
		}
	}()
	return w.pollCapture(ctx)
}

// enqueueRetrying enqueues msg, and waits and tries again while the queue
// is full: dropping events would leave the run short of its target.
func enqueueRetrying(ctx context.Context, client posthog.Client, msg posthog.Capture) {
	for ctx.Err() == nil {
		err := client.Enqueue(msg)
		if !errors.Is(err, posthog.ErrQueueFull) {
			return
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// prebuild reads the first spec.Prebuilt records and decodes each into the
// event the enricher would send, without enrichment.
func prebuild(ctx context.Context, spec ChildSpec) ([]posthog.Capture, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(spec.Brokers...),
		kgo.ConsumeTopics(spec.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []posthog.Capture
	for len(out) < spec.Prebuilt && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if len(out) >= spec.Prebuilt {
				return
			}
			src := event.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
			ev, _, err := record.V1{}.Decode(record.Input{Value: r.Value, Source: src, Timestamp: r.Timestamp})
			if err != nil {
				return
			}
			out = append(out, posthog.Capture{
				DistinctId: ev.DistinctID, Event: ev.Name,
				Timestamp: ev.Timestamp, Properties: ev.Properties,
			})
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no record to build events from in topic %s", spec.Topic)
	}
	return out, ctx.Err()
}

// runEnricher runs the enricher in this process until the capture server
// counts Target events, then shuts it down.
func runEnricher(ctx context.Context, spec ChildSpec, w *window) error {
	cfg, err := config.Parse(spec.Env)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx, cfg, log, io.Discard) }()

	pollErr := w.pollCapture(ctx)
	stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, app.ErrUndelivered) {
			return errors.Join(pollErr, err)
		}
	case <-time.After(cfg.ShutdownTimeout + 5*time.Second):
		return errors.Join(pollErr, errors.New("the enricher did not stop within its shutdown timeout"))
	}
	return pollErr
}
