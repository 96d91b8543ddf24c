package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// Markers around the block of docs/benchmarks.md that the bench rewrites.
const (
	docsBegin = "<!-- end-to-end results: begin (written by cmd/bench) -->"
	docsEnd   = "<!-- end-to-end results: end -->"
)

// Machine describes where the bench ran.
type Machine struct {
	CPUs      int
	CPUModel  string
	GoVersion string
	// LoadBefore and LoadAfter are the 1-minute load averages at the start
	// and end of the run. A load above the core count means that other
	// processes shared the machine.
	LoadBefore, LoadAfter string
}

// ReadMachine describes this machine.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPUModel = strings.TrimSpace(value)
				break
			}
		}
	}
	return m
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return "unknown"
	}
	return fields[0]
}

// UpdateDocs replaces the results block of the Markdown file at path.
func (r *Report) UpdateDocs(path, command string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	begin := bytes.Index(doc, []byte(docsBegin))
	end := bytes.Index(doc, []byte(docsEnd))
	if begin < 0 || end < begin {
		return fmt.Errorf("%s has no results block: add the lines %q and %q to its End to end section", path, docsBegin, docsEnd)
	}
	var block bytes.Buffer
	block.WriteString(docsBegin + "\n\n")
	r.WriteMarkdown(&block, command)
	block.WriteString("\n")
	out := append(append(append([]byte{}, doc[:begin]...), block.Bytes()...), doc[end:]...)
	return os.WriteFile(path, out, 0o644)
}

// WriteMarkdown writes the results as Markdown: how they were made, the
// table, the ratios, the targets and the memory run.
func (r *Report) WriteMarkdown(w io.Writer, command string) {
	m := r.Machine
	fmt.Fprintf(w, "Measured on %s with `%s`: %d cores (`nproc`), %s, %s. The run took %s. "+
		"The 1-minute load average was %s before the run and %s after it. ", r.Started.UTC().Format("2006-01-02"),
		command, m.CPUs, m.CPUModel, m.GoVersion, r.Took.Round(time.Second), m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "The run's own processes raise it to about %d; a value well above 0 before the run means that other work shared the cores. "+
		"Records average %d bytes.\n\n", m.CPUs, r.AvgRecord)

	fmt.Fprintf(w, "Each throughput figure is the median of %d rounds; the rounds ran every configuration in turn.\n\n", max(1, r.Options.Rounds))
	fmt.Fprintln(w, "| configuration | records/s | rounds' range | MB/s in | CPU µs/record | allocs/record | peak RSS MiB | latency p50 | latency p99 | at records/s | broker and servers CPU µs/record |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, res := range r.Results {
		if res.RecordsPerSec == 0 {
			fmt.Fprintf(w, "| %s: %s | failed: %s | | | | | | | | | |\n", res.Name, res.Label, oneLine(res.Err))
			continue
		}
		fmt.Fprintf(w, "| %s: %s | %.0f | %.0f–%.0f | %.1f | %.1f | %.1f | %d | %s | %s | %s | %.1f |\n",
			res.Name, res.Label, res.RecordsPerSec, res.MinPerSec, res.MaxPerSec, res.MBPerSec, us(res.CPUPerRecord), res.AllocsPerRecord,
			res.PeakRSS>>20, ms(res.P50), ms(res.P99), rate(res.LatencyRate), us(res.ServerCPUPerRecord))
	}
	fmt.Fprintln(w)
	r.writeTargets(w)
	r.writeBudgets(w)
	if mem := r.Memory; mem != nil {
		fmt.Fprintf(w, "\nMemory run: a backlog of %d records, the capture server responding to each request after %s, "+
			"the enricher with its default settings for %s: %d events delivered, peak RSS %d MiB (VmHWM)%s.\n",
			mem.Backlog, mem.Delay, mem.Duration, mem.Delivered, mem.PeakRSS>>20, errSuffix(mem.Err))
	}
	for _, res := range r.Results {
		if res.Err != "" && res.RecordsPerSec > 0 {
			fmt.Fprintf(w, "\n%s: %s\n", res.Name, oneLine(res.Err))
		}
	}
}

// writeTargets lists each target with the measured value.
func (r *Report) writeTargets(w io.Writer) {
	b, d := r.find(ConfigPostHog), r.find(ConfigEnricher)
	fmt.Fprintln(w, "| target | measured | met |")
	fmt.Fprintln(w, "|---|---:|---|")
	ratio := func(name string, a, c string, want float64) {
		if v := r.Ratio(a, c); v > 0 {
			fmt.Fprintf(w, "| %s ≥ %.1f | %.2f | %s |\n", name, want, v, yesNo(v >= want))
		}
	}
	ratio("(d)/(c)", ConfigEnricher, ConfigNaive, 1.8)
	ratio("(d)/(b), one posthog-go client", ConfigEnricher, ConfigPostHog, 0.9)
	ratio("(d, 2 clients)/(b)", ConfigClients, ConfigPostHog, 1.0)
	if b != nil && d != nil && b.RecordsPerSec > 0 && d.RecordsPerSec > 0 {
		outside := us(d.CPUPerRecord - b.CPUPerRecord)
		allocs := d.AllocsPerRecord - b.AllocsPerRecord
		fmt.Fprintf(w, "| enricher CPU outside posthog-go, (d) − (b), ≤ 10 µs/record | %.1f µs | %s |\n", outside, yesNo(outside <= 10))
		fmt.Fprintf(w, "| enricher allocations outside posthog-go, (d) − (b), ≤ 15/record | %.1f | %s |\n", allocs, yesNo(allocs <= 15))
	}
	if mem := r.Memory; mem != nil && mem.PeakRSS > 0 {
		fmt.Fprintf(w, "| peak RSS in the backlog run < 256 MiB | %d MiB | %s |\n", mem.PeakRSS>>20, yesNo(mem.PeakRSS < 256<<20))
	}
	for _, res := range r.Results {
		enricher := strings.HasPrefix(res.Name, "d-") || strings.HasPrefix(res.Name, "e-")
		if enricher && res.P99 > 0 {
			fmt.Fprintf(w, "| %s p99 latency at half its maximum rate < 1.5 s | %d ms | %s |\n",
				res.Name, res.P99.Milliseconds(), yesNo(res.P99 < 1500*time.Millisecond))
		}
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
