package flood

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Curve is a table of series over one x: a sweep's results (p50 and p99
// latency against the load asked, say).
type Curve struct {
	X      string      // the x column's name
	Series []string    // the other columns' names
	Rows   [][]float64 // x, then one value per series
}

// ReadCurve reads a CSV whose header names x and the series and whose
// rows are numbers.
func ReadCurve(r io.Reader) (Curve, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return Curve{}, fmt.Errorf("curve: %w", err)
	}
	if len(recs) < 2 || len(recs[0]) < 2 {
		return Curve{}, fmt.Errorf("curve: want a header of x and at least one series, and a row")
	}
	c := Curve{X: recs[0][0], Series: recs[0][1:]}
	for i, rec := range recs[1:] {
		row := make([]float64, len(rec))
		for j, f := range rec {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return Curve{}, fmt.Errorf("curve: row %d, column %q: %q is not a number", i+2, recs[0][j], f)
			}
			row[j] = v
		}
		c.Rows = append(c.Rows, row)
	}
	return c, nil
}

// PlotCurve draws every series of c against its x, with points, on a
// log scale of y when logY (latencies that span orders of magnitude).
// yLabel names the y axis; format is png, svg or pdf.
func PlotCurve(c Curve, title, yLabel string, logY bool, format string, w io.Writer) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = c.X
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	colors := []color.Color{color.RGBA{R: 200, A: 255}, color.RGBA{B: 200, A: 255}, color.RGBA{G: 130, A: 255}, color.RGBA{R: 120, G: 60, B: 160, A: 255}}
	for s, name := range c.Series {
		xys := make(plotter.XYs, 0, len(c.Rows))
		for _, row := range c.Rows {
			if y := row[s+1]; !logY || y > 0 {
				xys = append(xys, plotter.XY{X: row[0], Y: y})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		col := colors[s%len(colors)]
		l.Color, l.Width = col, vg.Points(1.5)
		pts.Color, pts.Shape = col, draw.CircleGlyph{}
		p.Add(l, pts)
		p.Legend.Add(name, l, pts)
	}
	p.Legend.Top, p.Legend.Left = true, true
	c2, err := draw.NewFormattedCanvas(7*vg.Inch, 4*vg.Inch, format)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p.Draw(draw.New(c2))
	_, err = c2.WriteTo(w)
	return err
}
