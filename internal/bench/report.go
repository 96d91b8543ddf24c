package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// find returns the result named name, or nil.
func (r *Report) find(name string) *Result {
	for i := range r.Results {
		if r.Results[i].Name == name {
			return &r.Results[i]
		}
	}
	return nil
}

// Ratio returns the records/s of a over those of b, or 0 when either is
// missing.
func (r *Report) Ratio(a, b string) float64 {
	ra, rb := r.find(a), r.find(b)
	if ra == nil || rb == nil || rb.RecordsPerSec == 0 {
		return 0
	}
	return ra.RecordsPerSec / rb.RecordsPerSec
}

// WriteText prints the report as an aligned table.
func (r *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "configuration\trecords/s\trange\tMB/s in\tCPU us/record\tallocs/record\tpeak RSS MiB\tp50\tp99\tat records/s\tserver CPU us/record\t")
	for _, res := range r.Results {
		if res.Err != "" && res.RecordsPerSec == 0 {
			fmt.Fprintf(tw, "%s\tfailed: %s\t\t\t\t\t\t\t\t\t\t\n", res.Name, res.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f-%.0f\t%.1f\t%.1f\t%.1f\t%d\t%s\t%s\t%s\t%.1f\t\n",
			res.Name, res.RecordsPerSec, res.MinPerSec, res.MaxPerSec, res.MBPerSec, us(res.CPUPerRecord), res.AllocsPerRecord,
			res.PeakRSS>>20, ms(res.P50), ms(res.P99), rate(res.LatencyRate), us(res.ServerCPUPerRecord))
	}
	tw.Flush()
	for _, p := range ratioPairs {
		if v := r.Ratio(p[0], p[1]); v > 0 {
			fmt.Fprintf(w, "%s / %s = %.2f\n", p[0], p[1], v)
		}
	}
	for _, bu := range r.Budgets() {
		fmt.Fprintf(w, "%s leaves %.1f us/record for decoding, enriching and committing; d-enricher spent %.1f\n",
			bu.Target, us(bu.Left), us(bu.Measured))
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "memory: backlog %d, capture answering after %s, %s: delivered %d, peak RSS %d MiB%s\n",
			m.Backlog, m.Delay, m.Duration, m.Delivered, m.PeakRSS>>20, errSuffix(m.Err))
	}
	for _, res := range r.Results {
		if res.Err != "" {
			fmt.Fprintf(w, "%s: %s\n", res.Name, res.Err)
		}
	}
	fmt.Fprintf(w, "took %s\n", r.Took.Round(time.Second))
}

// ratioPairs are the ratios the report prints.
var ratioPairs = [][2]string{
	{ConfigEnricher, ConfigNaive},
	{ConfigEnricher, ConfigPostHog},
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func rate(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", r)
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return " (" + strings.TrimSpace(err) + ")"
}
