package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options configure a bench run.
type Options struct {
	// Records is the record count of each throughput run.
	Records int
	// Rounds is how many times each configuration's throughput run is
	// repeated; the report takes the run with the median records/s.
	Rounds int
	// Backlog is the record count of the memory run's backlog. The source
	// topic holds max(Records, Backlog) records.
	Backlog int
	// Partitions is the partition count of each topic.
	Partitions int32
	// LatencyDuration is how long each latency run produces records.
	LatencyDuration time.Duration
	// MemoryDuration is how long the memory run lasts.
	MemoryDuration time.Duration
	// CaptureDelay is how long the capture server waits before it responds
	// in the memory run.
	CaptureDelay time.Duration
	// Only, when not empty, names the configurations to run.
	Only []string
	// ProfileDir, when set, receives a CPU profile of each run's window.
	ProfileDir string
	// Exe is the binary that runs each configuration in a child process,
	// with ChildEnv set. Empty means this process's executable.
	Exe string
	// EnricherEnv is added to the environment of every enricher run.
	EnricherEnv map[string]string
	// Log receives progress lines.
	Log io.Writer
}

// Result is one configuration's measurements.
type Result struct {
	Name  string
	Label string
	// RecordsPerSec is records consumed (bare) or events delivered per
	// second, between 10% and 100% of the records, in the median round.
	// MinPerSec and MaxPerSec are the lowest and highest of the rounds.
	RecordsPerSec        float64
	MinPerSec, MaxPerSec float64
	MBPerSec             float64
	// CPUPerRecord is the process's user and system CPU time per record in
	// the same window, and AllocsPerRecord its heap allocations.
	CPUPerRecord    time.Duration
	AllocsPerRecord float64
	// PeakRSS is the process's maximum resident set size, in bytes.
	PeakRSS int64
	// ServerCPUPerRecord is the CPU time per record, in the same window,
	// of the bench process itself: the broker, the capture server and the
	// lookup server, which share the machine with the measured process.
	ServerCPUPerRecord time.Duration
	// P50 and P99 are delivery latencies at LatencyRate records/s; zero
	// when no latency run was made.
	P50, P99    time.Duration
	LatencyRate float64
	Err         string
}

// MemoryResult is the memory run's outcome.
type MemoryResult struct {
	Backlog   int
	Duration  time.Duration
	Delay     time.Duration
	Delivered int64
	PeakRSS   int64
	Env       map[string]string
	Err       string
}

// Report is a whole bench run.
type Report struct {
	Options   Options
	Results   []Result
	Memory    *MemoryResult
	AvgRecord int
	Machine   Machine
	Started   time.Time
	Took      time.Duration
}

const (
	sourceTopic = "llm-calls"
	dlqTopic    = "llm-calls.dlq"
	apiKey      = "phc_bench"
)

// bench is the state of one Run.
type bench struct {
	opts    Options
	brokers []string
	capture *Capture
	lookups *LookupServer
	avgSize int
	runs    int
}

// Run runs every configuration and returns the report. ctx bounds the
// whole run: the broker and the servers stop when it ends.
func Run(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	machine := ReadMachine()
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, errors.New("bench: ctx needs a deadline, which bounds the broker and servers")
	}
	lifetime := time.Until(deadline)
	if opts.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Exe = exe
	}
	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the profile directory: %w", err)
		}
	}
	configs := selectConfigs(opts.Only)
	latencyTopics := make([]string, len(configs))
	for i, c := range configs {
		latencyTopics[i] = "latency-" + c.name
	}

	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(opts.Partitions, append([]string{sourceTopic, dlqTopic}, latencyTopics...)...),
	)
	if err != nil {
		return nil, fmt.Errorf("starting kfake: %w", err)
	}
	defer cluster.Close()
	stopBroker := time.AfterFunc(lifetime, cluster.Close)
	defer stopBroker.Stop()

	b := &bench{opts: opts, brokers: cluster.ListenAddrs()}
	backlog := max(opts.Records, opts.Backlog)
	b.logf("producing %d records to %s", backlog, sourceTopic)
	if b.avgSize, err = produceBacklog(ctx, b.brokers, backlog); err != nil {
		return nil, err
	}
	b.logf("average record: %d bytes", b.avgSize)

	// The capture server's bound is far above what the runs deliver: a
	// latency run's count follows the measured rate, known only then.
	const maxEvents = 100_000_000
	if b.capture, err = StartCapture(CaptureConfig{APIKey: apiKey, MaxEvents: maxEvents, Lifetime: lifetime}); err != nil {
		return nil, err
	}
	defer b.capture.Close()
	if b.lookups, err = StartLookups(10*time.Millisecond, lifetime); err != nil {
		return nil, err
	}
	defer b.lookups.Close()

	rep := &Report{Options: opts, AvgRecord: b.avgSize, Started: start, Machine: machine}
	// Rounds run every configuration in turn, so that a change in the load
	// of a shared machine reaches each configuration alike.
	rounds := make([][]Result, len(configs))
	for range max(1, opts.Rounds) {
		for i, c := range configs {
			rounds[i] = append(rounds[i], b.throughput(ctx, c))
		}
	}
	for i, c := range configs {
		res := median(rounds[i])
		if c.latency && res.Err == "" && res.RecordsPerSec > 0 {
			b.latency(ctx, c, latencyTopics[i], &res)
		}
		rep.Results = append(rep.Results, res)
	}
	if len(opts.Only) == 0 || contains(opts.Only, "memory") {
		rep.Memory = b.memory(ctx)
	}
	rep.Took = time.Since(start)
	rep.Machine.LoadAfter = loadAverage()
	return rep, nil
}

func (b *bench) logf(format string, args ...any) {
	if b.opts.Log != nil {
		fmt.Fprintf(b.opts.Log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// throughput runs c over the first Records records of the source topic.
func (b *bench) throughput(ctx context.Context, c benchConfig) Result {
	res := Result{Name: c.name, Label: c.label}
	spec := b.spec(c, sourceTopic)
	spec.Target = int64(b.opts.Records)
	spec.Warm = spec.Target / 10
	spec.Timeout = 3 * time.Minute
	if b.opts.ProfileDir != "" {
		spec.CPUProfile = fmt.Sprintf("%s/%s.cpu.pprof", b.opts.ProfileDir, c.name)
	}

	b.logf("%s: %s", c.name, c.label)
	b.capture.Reset()
	samples := sampleCPU()
	out, rss, err := b.child(ctx, spec)
	serverCPU := samples.stop(out.WindowStart, out.WindowStart.Add(out.Window))
	res.PeakRSS = rss

	switch {
	case err != nil:
		res.Err = err.Error()
	case out.Err != "":
		res.Err = out.Err
	case out.TimedOut:
		res.Err = fmt.Sprintf("timed out after %s at %d of %d records", spec.Timeout, out.Reached, spec.Target)
	}
	if res.Err != "" {
		b.logf("%s: failed: %s", c.name, res.Err)
		return res
	}

	n := float64(spec.Target - spec.Warm)
	res.RecordsPerSec = n / out.Window.Seconds()
	res.MBPerSec = res.RecordsPerSec * float64(b.avgSize) / 1e6
	res.CPUPerRecord = time.Duration(float64(out.CPU) / n)
	res.AllocsPerRecord = float64(out.Mallocs) / n
	res.ServerCPUPerRecord = time.Duration(float64(serverCPU) / n)
	b.logf("%s: %.0f records/s, %.1f MB/s, %.1f us CPU and %.1f allocations per record, peak RSS %d MiB, broker and servers %.1f us CPU per record",
		c.name, res.RecordsPerSec, res.MBPerSec, us(res.CPUPerRecord), res.AllocsPerRecord, res.PeakRSS>>20, us(res.ServerCPUPerRecord))
	return res
}

// spec returns the child spec of c reading topic, under a group of its own.
func (b *bench) spec(c benchConfig, topic string) ChildSpec {
	b.runs++
	group := fmt.Sprintf("bench-%s-%d", c.name, b.runs)
	spec := ChildSpec{
		Mode: c.mode, Brokers: b.brokers, Topic: topic, Group: group,
		CaptureURL: b.capture.URL, APIKey: apiKey, Prebuilt: 4096,
	}
	if c.mode == ModeEnricher {
		spec.Env = enricherEnv(b, topic, group, c.env)
		maps.Copy(spec.Env, b.opts.EnricherEnv)
	}
	return spec
}

// child runs spec in a child process and returns its result and peak RSS.
func (b *bench) child(ctx context.Context, spec ChildSpec) (ChildResult, int64, error) {
	var res ChildResult
	raw, err := json.Marshal(spec)
	if err != nil {
		return res, 0, err
	}
	cmd := exec.CommandContext(ctx, b.opts.Exe)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(raw))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &tailWriter{max: 4096, buf: &stderr}
	runErr := cmd.Run()
	var rss int64
	if cmd.ProcessState != nil {
		rss = maxRSSBytes(cmd.ProcessState.SysUsage())
	}
	line := lastLineWith(stdout.String(), resultPrefix)
	if line == "" {
		return res, rss, fmt.Errorf("child reported no result (%v): %s", runErr, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return res, rss, fmt.Errorf("decoding the child's result: %w", err)
	}
	if res.PeakRSS > 0 {
		rss = res.PeakRSS
	}
	return res, rss, nil
}

func lastLineWith(s, prefix string) string {
	for _, line := range slicesReverse(strings.Split(s, "\n")) {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return rest
		}
	}
	return ""
}

func slicesReverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf *bytes.Buffer
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

// produceBacklog writes n generated records to the source topic, spread
// over its partitions, and returns their average size.
func produceBacklog(ctx context.Context, brokers []string, n int) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(20000))
	if err != nil {
		return 0, err
	}
	defer cl.Close()

	gen := NewGenerator(1)
	var total int64
	var firstErr error
	var mu sync.Mutex
	for i := range n {
		v := gen.Record(i, false)
		total += int64(len(v))
		cl.Produce(ctx, &kgo.Record{Topic: sourceTopic, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = cmpOr(firstErr, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, err
	}

	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return 0, fmt.Errorf("producing the backlog: %w", firstErr)
	}
	return int(total / int64(n)), nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// cpuSamples records this process's CPU time every 20 ms.
type cpuSamples struct {
	mu    sync.Mutex
	at    []time.Time
	cpu   []time.Duration
	quit  chan struct{}
	ended chan struct{}
}

func sampleCPU() *cpuSamples {
	s := &cpuSamples{quit: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(s.ended)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			s.mu.Lock()
			s.at, s.cpu = append(s.at, time.Now()), append(s.cpu, cpuTime())
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the CPU time used between from and
// to, from the samples nearest to each.
func (s *cpuSamples) stop(from, to time.Time) time.Duration {
	close(s.quit)
	<-s.ended
	if len(s.at) == 0 || !to.After(from) {
		return 0
	}
	return s.cpu[s.nearest(to)] - s.cpu[s.nearest(from)]
}

func (s *cpuSamples) nearest(t time.Time) int {
	i, _ := slices.BinarySearchFunc(s.at, t, func(a, b time.Time) int { return a.Compare(b) })
	return min(i, len(s.at)-1)
}

// median returns the result with the median records/s, a failed run
// counting as zero, with the range of all rounds.
func median(runs []Result) Result {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b Result) int { return cmp.Compare(a.RecordsPerSec, b.RecordsPerSec) })
	res := sorted[len(sorted)/2]
	res.MinPerSec, res.MaxPerSec = sorted[0].RecordsPerSec, sorted[len(sorted)-1].RecordsPerSec
	return res
}
