package bench

import (
	"context"
	"maps"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// latencyWarmup is the start of a latency run that is left out of the
// percentiles, or the first quarter of a run shorter than 12 s: the child
// process starts and joins its group meanwhile.
const latencyWarmup = 3 * time.Second

// latency runs c again over a topic of its own, into which records are
// produced at half of res.RecordsPerSec, and sets the delivery latency
// percentiles of the records produced after latencyWarmup. A record's
// latency runs from just before its produce call to the arrival of its
// event's batch at the capture server.
func (b *bench) latency(ctx context.Context, c benchConfig, topic string, res *Result) {
	rate := res.RecordsPerSec / 2
	// A latency run produces no more records than a throughput run reads,
	// which shortens it when the measured rate is high for its records.
	total := min(int(rate*b.opts.LatencyDuration.Seconds()), b.opts.Records)
	gen := NewGenerator(uint64(2 + b.runs))
	recs := make([][]byte, total)
	for i := range recs {
		recs[i] = gen.Record((b.runs+1)*10_000_000+i, true)
	}

	spec := b.spec(c, topic)
	spec.Target = int64(total)
	spec.Timeout = b.opts.LatencyDuration + time.Minute
	b.logf("%s: latency at %.0f records/s for %.1fs", c.name, rate, float64(total)/rate)
	b.capture.Reset()

	type outcome struct {
		res ChildResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		out, _, err := b.child(ctx, spec)
		done <- outcome{out, err}
	}()
	start := time.Now()
	failed := produceAtRate(ctx, b.brokers, topic, recs, rate)
	out := <-done
	switch {
	case out.err != nil:
		res.Err = "latency run: " + out.err.Error()
	case out.res.Err != "":
		res.Err = "latency run: " + out.res.Err
	case out.res.TimedOut:
		res.Err = "latency run: timed out"
	case failed > 0:
		res.Err = "latency run: records failed to produce"
	}
	produced := time.Duration(float64(total) / rate * float64(time.Second))
	warmup := min(latencyWarmup, produced/4)
	lat := b.capture.Latencies(start.Add(warmup).UnixMicro())
	if res.Err == "" && len(lat) == 0 {
		res.Err = "latency run: no event arrived after the warm-up"
	}
	if res.Err != "" {
		b.logf("%s: %s", c.name, res.Err)
		return
	}
	res.LatencyRate = rate
	res.P50 = lat[len(lat)*50/100]
	res.P99 = lat[len(lat)*99/100]
	b.logf("%s: latency p50 %s, p99 %s over %d events", c.name, res.P50.Round(time.Millisecond), res.P99.Round(time.Millisecond), len(lat))
}

// produceAtRate produces recs to topic at rate records per second, each
// stamped with the time of its produce call, and returns how many failed.
func produceAtRate(ctx context.Context, brokers []string, topic string, recs [][]byte, rate float64) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		return int64(len(recs))
	}
	defer cl.Close()
	var failed atomic.Int64
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for sent < len(recs) && ctx.Err() == nil {
		<-tick.C
		due := min(len(recs), int(time.Since(start).Seconds()*rate))
		for ; sent < due; sent++ {
			v := StampSent(recs[sent], time.Now().UnixMicro())
			recs[sent] = nil
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
				}
			})
		}
	}
	cl.Flush(ctx)
	return failed.Load() + int64(len(recs)-sent)
}

// memory runs the enricher with its default settings over the whole
// backlog, with the capture server responding to each request after
// CaptureDelay, for MemoryDuration, and reports its peak RSS.
func (b *bench) memory(ctx context.Context) *MemoryResult {
	c := benchConfig{name: "memory", mode: ModeEnricher}
	spec := b.spec(c, sourceTopic)
	delete(spec.Env, "ENRICHER_POSTHOG_GZIP")
	spec.Target = int64(max(b.opts.Records, b.opts.Backlog))
	spec.Timeout = b.opts.MemoryDuration
	if b.opts.ProfileDir != "" {
		spec.CPUProfile = b.opts.ProfileDir + "/memory.cpu.pprof"
	}
	m := &MemoryResult{Backlog: int(spec.Target), Duration: spec.Timeout, Delay: b.opts.CaptureDelay, Env: maps.Clone(spec.Env)}
	for _, k := range []string{"ENRICHER_KAFKA_BROKERS", "ENRICHER_POSTHOG_HOST", "ENRICHER_LOOKUPS", "ENRICHER_RULES", "ENRICHER_KAFKA_GROUP"} {
		delete(m.Env, k)
	}
	b.logf("memory: %d records backlog, capture server answering after %s, for %s", spec.Target, b.opts.CaptureDelay, spec.Timeout)
	b.capture.Reset()
	b.capture.SetDelay(b.opts.CaptureDelay)
	defer b.capture.SetDelay(0)
	out, rss, err := b.child(ctx, spec)
	m.PeakRSS, m.Delivered = rss, out.Reached
	switch {
	case err != nil:
		m.Err = err.Error()
	case out.Err != "":
		m.Err = out.Err
	}
	b.logf("memory: delivered %d, peak RSS %d MiB", m.Delivered, m.PeakRSS>>20)
	return m
}
