// Command bench measures the enricher end to end against a kfake broker and
// a capture server on 127.0.0.1, beside the Kafka ceiling, the posthog-go
// ceiling and a naive peer, and writes the results to docs/benchmarks.md.
// See docs/benchmarks.md for what it measures and how to read it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/llm-enricher/enricher/internal/bench"
)

func main() {
	if bench.RunChild(os.Stdout) {
		return
	}
	opts := bench.Options{Partitions: 6, Log: os.Stderr}
	var only, env, docs string
	var timeout time.Duration
	flag.IntVar(&opts.Records, "records", 200_000, "records per throughput run")
	flag.IntVar(&opts.Rounds, "rounds", 3, "throughput runs of each configuration, taken in turn; the median counts")
	flag.IntVar(&opts.Backlog, "backlog", 1_000_000, "records in the memory run's backlog")
	flag.DurationVar(&opts.LatencyDuration, "latency-duration", 12*time.Second, "how long each latency run produces records")
	flag.DurationVar(&opts.MemoryDuration, "memory-duration", 40*time.Second, "how long the memory run lasts")
	flag.DurationVar(&opts.CaptureDelay, "capture-delay", 2*time.Second, "capture server answer delay in the memory run")
	flag.StringVar(&only, "only", "", "comma-separated configurations to run, and memory for the memory run; empty runs all")
	flag.StringVar(&opts.ProfileDir, "cpuprofile-dir", "", "directory for a CPU profile of each throughput run")
	flag.StringVar(&env, "enricher-env", "", "comma-separated KEY=VALUE settings added to every enricher run, such as ENRICHER_MAX_IN_FLIGHT=20000")
	flag.StringVar(&docs, "docs", "", "Markdown file whose end-to-end results block to rewrite, such as docs/benchmarks.md; the chart benchmarks-throughput.png goes beside it")
	flag.DurationVar(&timeout, "timeout", 10*time.Minute, "bound of the whole run, broker and servers included")
	flag.Parse()
	if only != "" {
		opts.Only = strings.Split(only, ",")
	}
	if env != "" {
		opts.EnricherEnv = make(map[string]string)
		for _, kv := range strings.Split(env, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				fmt.Fprintf(os.Stderr, "bench: -enricher-env: %q is not KEY=VALUE\n", kv)
				os.Exit(2)
			}
			opts.EnricherEnv[k] = v
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	rep.WriteText(os.Stdout)
	if docs == "" {
		return
	}
	chart := filepath.Join(filepath.Dir(docs), "benchmarks-throughput.png")
	if err := rep.WriteChart(chart); err != nil {
		fmt.Fprintln(os.Stderr, "bench: writing the chart:", err)
		os.Exit(1)
	}
	command := strings.TrimSpace("go run ./cmd/bench " + strings.Join(os.Args[1:], " "))
	if err := rep.UpdateDocs(docs, command); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", docs, chart)
}
