package harness

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// palette is the colours of a chart's series, in order.
var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff},
	color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, color.RGBA{0xd6, 0x27, 0x28, 0xff},
	color.RGBA{0x94, 0x67, 0xbd, 0xff},
}

// series is one named set of bar heights, one per category.
type series struct {
	name   string
	values []float64
}

// barChart writes a grouped bar chart as a PNG.
func barChart(path, title, ylabel string, categories []string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	width := vg.Points(float64(360) / float64(len(categories)*len(ss)+len(categories)))
	for i, s := range ss {
		vals := make(plotter.Values, len(s.values))
		for j, v := range s.values {
			if math.IsNaN(v) {
				v = 0
			}
			vals[j] = v
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
		}
		b.LineStyle.Width = 0
		b.Color = palette[i%len(palette)]
		b.Offset = width * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	p.NominalX(categories...)
	p.X.Tick.Label.Rotation = 0.5
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
	}
	return nil
}

// line is one series of a line chart: per x, the values of the repetitions.
type line struct {
	name string
	xs   []float64
	reps [][]float64
}

// lineChart writes a line chart of medians with min–max error bars, as a
// PNG, with a log x axis.
func lineChart(path, title, xlabel, ylabel string, ls []line) error {
	return lineChartScale(path, title, xlabel, ylabel, true, ls)
}

// lineChartScale is lineChart with a log x axis or, if !logX, a linear
// one from 0.
func lineChartScale(path, title, xlabel, ylabel string, logX bool, ls []line) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	} else {
		p.X.Min = 0
	}
	p.Legend.Top = true
	p.Legend.Left = true
	for i, l := range ls {
		// One XYer per x: the repetitions' values there.
		var pts []plotter.XYer
		for j, x := range l.xs {
			var xy plotter.XYs
			for _, v := range l.reps[j] {
				if !math.IsNaN(v) {
					xy = append(xy, plotter.XY{X: x, Y: v})
				}
			}
			if len(xy) > 0 {
				pts = append(pts, xy)
			}
		}
		if len(pts) == 0 {
			continue
		}
		ep, err := plotutil.NewErrorPoints(plotutil.MedianAndMinMax, pts...)
		if err != nil {
			return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
		}
		ln, sc, err := plotter.NewLinePoints(ep)
		if err != nil {
			return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
		}
		ln.Color, sc.Color = palette[i%len(palette)], palette[i%len(palette)]
		eb, err := plotter.NewYErrorBars(ep)
		if err != nil {
			return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
		}
		eb.Color = palette[i%len(palette)]
		p.Add(ln, sc, eb)
		p.Legend.Add(l.name, ln, sc)
	}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("chart %s: %w", filepath.Base(path), err)
	}
	return nil
}
