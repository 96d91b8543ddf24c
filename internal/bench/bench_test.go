package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-enricher/enricher/internal/testsupport"
)

// TestMain runs the process as a bench child when ChildEnv is set, so
// that the smoke test can start children from the test binary.
func TestMain(m *testing.M) {
	if RunChild(os.Stdout) {
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunSmallEnricher runs the enricher configuration and the memory run
// over a thousand records, and checks that every measurement came
// back and reaches the docs and the chart.
func TestRunSmallEnricher(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and child processes")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var progress testsupport.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bench progress:\n%s", progress.String())
		}
	})
	rep, err := Run(ctx, Options{
		Records: 1000, Backlog: 1000, Partitions: 1,
		LatencyDuration: time.Second, MemoryDuration: 1500 * time.Millisecond, CaptureDelay: 100 * time.Millisecond,
		Only: []string{ConfigEnricher, "memory"},
		Log:  &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("got %d results, want 1", len(rep.Results))
	}
	res := rep.Results[0]
	if res.Err != "" {
		t.Fatalf("%s failed: %s", res.Name, res.Err)
	}
	checks := map[string]bool{
		"records/s":         res.RecordsPerSec > 0,
		"CPU per record":    res.CPUPerRecord > 0,
		"allocs per record": res.AllocsPerRecord > 0,
		"peak RSS":          res.PeakRSS > 0,
		"latency p99":       res.P99 > 0 && res.P99 >= res.P50,
	}
	for name, ok := range checks {
		if !ok {
			t.Errorf("%s missing from %+v", name, res)
		}
	}
	if m := rep.Memory; m == nil || m.Err != "" || m.Delivered == 0 || m.PeakRSS == 0 {
		t.Errorf("memory run = %+v, want events delivered and a peak RSS", m)
	}

	var md bytes.Buffer
	rep.WriteMarkdown(&md, "go run ./cmd/bench")
	if !strings.Contains(md.String(), "| "+ConfigEnricher+": ") {
		t.Errorf("Markdown has no row for %s:\n%s", ConfigEnricher, md.String())
	}
	chart := filepath.Join(t.TempDir(), "chart.png")
	if err := rep.WriteChart(chart); err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("chart is not a PNG: starts with %q", png[:min(8, len(png))])
	}
}

// The budget of a throughput target is the cores' time per record at the
// target rate, less what posthog-go, consuming and the servers took.
func TestBudgets(t *testing.T) {
	rep := Report{Machine: Machine{CPUs: 2}, Results: []Result{
		{Name: ConfigBare, RecordsPerSec: 200_000, CPUPerRecord: 4 * time.Microsecond},
		{Name: ConfigPostHog, RecordsPerSec: 50_000, CPUPerRecord: 25 * time.Microsecond, ServerCPUPerRecord: 7 * time.Microsecond},
		{Name: ConfigNaive, RecordsPerSec: 20_000, CPUPerRecord: 60 * time.Microsecond},
		{Name: ConfigEnricher, RecordsPerSec: 30_000, CPUPerRecord: 50 * time.Microsecond, ServerCPUPerRecord: 10 * time.Microsecond},
	}}
	got := rep.Budgets()
	if len(got) != 2 {
		t.Fatalf("got %d budgets, want 2: %+v", len(got), got)
	}
	// 0.9 × 50,000 = 45,000 records/s: 2 s / 45,000 = 44.4 µs, less 25,
	// 4 and 10.
	b := got[0]
	if b.Rate != 45_000 {
		t.Errorf("rate for (d)/(b) = %v, want 45000", b.Rate)
	}
	if want := 44444 * time.Nanosecond; b.PerRecord != want {
		t.Errorf("per record for (d)/(b) = %v, want %v", b.PerRecord, want)
	}
	if want := 5444 * time.Nanosecond; b.Left != want {
		t.Errorf("left for (d)/(b) = %v, want %v", b.Left, want)
	}
	if want := 21 * time.Microsecond; b.Measured != want {
		t.Errorf("measured own work = %v, want %v", b.Measured, want)
	}
	// 1.8 × 20,000 = 36,000 records/s: 55.6 µs, less 39.
	c := got[1]
	if want := 16555 * time.Nanosecond; c.Left != want {
		t.Errorf("left for (d)/(c) = %v, want %v", c.Left, want)
	}

	var md bytes.Buffer
	rep.writeBudgets(&md)
	for _, want := range []string{"| = left for decoding, enriching and committing | 5.4 | 16.6 |", "d-enricher 1.80"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("budget table lacks %q:\n%s", want, md.String())
		}
	}
}
