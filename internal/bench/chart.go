package bench

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WriteChart draws the records/s of each configuration as horizontal bars,
// labelled with their values, into a PNG file. a-bare delivers nothing,
// and its bar would dwarf the others, so it is left out.
func (r *Report) WriteChart(path string) error {
	var names []string
	var values plotter.Values
	var labels plotter.XYLabels
	for i := len(r.Results) - 1; i >= 0; i-- {
		res := r.Results[i]
		if res.RecordsPerSec == 0 || res.Name == ConfigBare {
			continue
		}
		names = append(names, res.Name)
		values = append(values, res.RecordsPerSec)
		labels.XYs = append(labels.XYs, plotter.XY{X: res.RecordsPerSec, Y: float64(len(values) - 1)})
		labels.Labels = append(labels.Labels, fmt.Sprintf(" %.0f", res.RecordsPerSec))
	}
	if len(values) == 0 {
		return fmt.Errorf("no throughput to chart")
	}

	p := plot.New()
	p.Title.Text = fmt.Sprintf("Records delivered per second, one process on %d cores", max(1, r.Machine.CPUs))
	p.X.Label.Text = "records/s (higher is better)"
	p.X.Min = 0
	bars, err := plotter.NewBarChart(values, vg.Points(18))
	if err != nil {
		return err
	}
	bars.Horizontal = true
	bars.Color = color.RGBA{R: 0x1d, G: 0x4e, B: 0x89, A: 0xff}
	bars.LineStyle.Width = 0
	p.Add(bars)
	text, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	p.Add(text)
	p.NominalY(names...)
	// Room on the right for the label of the longest bar.
	_, xmax, _, _ := bars.DataRange()
	p.X.Max = xmax * 1.18
	return p.Save(16*vg.Centimeter, vg.Length(3+len(values))*vg.Centimeter, path)
}
