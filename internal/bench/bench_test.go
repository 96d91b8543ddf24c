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
