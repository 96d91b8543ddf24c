package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Budget is the share of the machine's CPU that a throughput target leaves
// for the enricher's own work, by the CPU per record that a run measured.
// It rests on one premise, which the run shows: on a machine that the
// enricher, the broker and the servers keep busy, records/s follows the
// CPU time that the two processes spend per record together.
type Budget struct {
	// Target names the target, such as "(d)/(b) ≥ 0.9".
	Target string
	// Rate is the records/s of the target.
	Rate float64
	// PerRecord is the CPU time of all cores per record at Rate.
	PerRecord time.Duration
	// PostHog is posthog-go's work per record, as b-posthog measured it.
	// The enricher hands each event to posthog-go in the same way.
	PostHog time.Duration
	// Consume is a franz-go consumer's work per record, as a-bare
	// measured it.
	Consume time.Duration
	// Servers is the bench process's CPU per record in d-enricher: the
	// broker, the capture server and the lookup server.
	Servers time.Duration
	// Left is PerRecord less PostHog, Consume and Servers: what the target
	// leaves for decoding, enriching, tracking offsets and committing.
	Left time.Duration
	// Measured is the cost of that work in d-enricher: its CPU per record
	// less PostHog and Consume.
	Measured time.Duration
}

// Budgets returns the budgets of the two throughput targets, or none when
// a configuration they need is missing.
func (r *Report) Budgets() []Budget {
	a, b, c, d := r.find(ConfigBare), r.find(ConfigPostHog), r.find(ConfigNaive), r.find(ConfigEnricher)
	if !measured(a) || !measured(b) || !measured(d) {
		return nil
	}
	cores := float64(max(1, r.Machine.CPUs))
	budget := func(target string, rate float64) Budget {
		bu := Budget{
			Target: target, Rate: rate,
			PerRecord: time.Duration(cores / rate * float64(time.Second)),
			PostHog:   b.CPUPerRecord, Consume: a.CPUPerRecord, Servers: d.ServerCPUPerRecord,
			Measured: d.CPUPerRecord - b.CPUPerRecord - a.CPUPerRecord,
		}
		bu.Left = bu.PerRecord - bu.PostHog - bu.Consume - bu.Servers
		return bu
	}
	out := []Budget{budget("(d)/(b) ≥ 0.9", 0.9*b.RecordsPerSec)}
	if measured(c) {
		out = append(out, budget("(d)/(c) ≥ 1.8", 1.8*c.RecordsPerSec))
	}
	return out
}

func measured(res *Result) bool { return res != nil && res.RecordsPerSec > 0 }

// writeBudgets writes the budgets as a table, and how busy the cores were.
func (r *Report) writeBudgets(w io.Writer) {
	budgets := r.Budgets()
	if len(budgets) == 0 {
		return
	}
	fmt.Fprintf(w, "\nWhat the throughput targets leave for the enricher's own work, by the CPU per record above (%d cores):\n\n", r.Machine.CPUs)
	fmt.Fprint(w, "| µs/record |")
	for _, bu := range budgets {
		fmt.Fprintf(w, " for %s: %.0f records/s |", bu.Target, bu.Rate)
	}
	fmt.Fprint(w, "\n|---|")
	for range budgets {
		fmt.Fprint(w, "---:|")
	}
	fmt.Fprintln(w)
	row := func(label string, f func(Budget) time.Duration) {
		fmt.Fprintf(w, "| %s |", label)
		for _, bu := range budgets {
			fmt.Fprintf(w, " %.1f |", us(f(bu)))
		}
		fmt.Fprintln(w)
	}
	row("CPU time of all cores per record", func(bu Budget) time.Duration { return bu.PerRecord })
	row("− posthog-go, as in b-posthog", func(bu Budget) time.Duration { return bu.PostHog })
	row("− consuming, as in a-bare", func(bu Budget) time.Duration { return bu.Consume })
	row("− broker and servers, as in d-enricher", func(bu Budget) time.Duration { return bu.Servers })
	row("= left for decoding, enriching and committing", func(bu Budget) time.Duration { return bu.Left })
	row("measured: d-enricher − b-posthog − a-bare", func(bu Budget) time.Duration { return bu.Measured })

	var busy []string
	for _, res := range r.Results {
		if measured(&res) {
			cores := res.RecordsPerSec * float64(res.CPUPerRecord+res.ServerCPUPerRecord) / float64(time.Second)
			busy = append(busy, fmt.Sprintf("%s %.2f", res.Name, cores))
		}
	}
	fmt.Fprintf(w, "\nCores busy at the median records/s, measured process and bench process together: %s.\n", strings.Join(busy, ", "))
}
