package flood

import (
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotFormat returns the image format for an output file name: png, svg
// or pdf.
func PlotFormat(name string) (string, error) {
	switch ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(name), ".")); ext {
	case "png", "svg", "pdf":
		return ext, nil
	default:
		return "", fmt.Errorf("plot: %q: want a .png, .svg or .pdf file", name)
	}
}

// Plot draws the memory log as the original's chart, memory (MB) over
// minutes elapsed, with the established connections on a second axis: a
// panel below sharing the time axis; and, when the log has them, the
// router's memory and a third panel of the messages the clients received
// per second. format is png, svg or pdf.
func Plot(samples []Sample, title string, format string, w io.Writer) error {
	if len(samples) == 0 {
		return fmt.Errorf("plot: the memory log has no samples")
	}
	t0 := samples[0].Time
	mem := make(plotter.XYs, len(samples))
	sock := make(plotter.XYs, len(samples))
	router := make(plotter.XYs, len(samples))
	conns := make(plotter.XYs, len(samples))
	rate := make(plotter.XYs, 0, len(samples))
	hasRouter, hasRate := false, false
	for i, s := range samples {
		m := s.Time.Sub(t0).Minutes()
		mem[i] = plotter.XY{X: m, Y: float64(s.RSSKB) / 1024}
		sock[i] = plotter.XY{X: m, Y: float64(s.SockKB) / 1024}
		router[i] = plotter.XY{X: m, Y: float64(s.RouterKB) / 1024}
		conns[i] = plotter.XY{X: m, Y: float64(s.Conns)}
		hasRouter = hasRouter || s.RouterKB > 0
		if i > 0 && s.Messages >= samples[i-1].Messages {
			if dt := s.Time.Sub(samples[i-1].Time).Seconds(); dt > 0 {
				rate = append(rate, plotter.XY{X: m, Y: float64(s.Messages-samples[i-1].Messages) / dt})
				hasRate = hasRate || s.Messages > 0
			}
		}
	}

	top := plot.New()
	top.Title.Text = title
	top.Y.Label.Text = "Mem (MB)"
	top.Y.Min = 0
	memLine, err := newLine(mem, color.RGBA{R: 200, A: 255})
	if err != nil {
		return err
	}
	top.Add(memLine, plotter.NewGrid())
	top.Legend.Add("gateway resident", memLine)
	hasSock := false
	for _, s := range samples {
		hasSock = hasSock || s.SockKB > 0
	}
	if hasSock {
		sockLine, err := newLine(sock, color.RGBA{B: 200, A: 255})
		if err != nil {
			return err
		}
		sockLine.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		top.Add(sockLine)
		top.Legend.Add("kernel TCP buffers (sockstat)", sockLine)
	}
	if hasRouter {
		routerLine, err := newLine(router, color.RGBA{R: 120, G: 60, B: 160, A: 255})
		if err != nil {
			return err
		}
		routerLine.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
		top.Add(routerLine)
		top.Legend.Add("router resident (with its NATS server)", routerLine)
	}
	top.Legend.Top = true
	top.Legend.Left = true
	// Headroom above the peak for the legend.
	peak := 0.0
	for i := range mem {
		peak = max(peak, mem[i].Y, sock[i].Y, router[i].Y)
	}
	top.Y.Max = peak * 1.3

	middle := plot.New()
	middle.X.Label.Text = "Minutes Elapsed"
	middle.Y.Label.Text = "Connections"
	middle.Y.Min = 0
	connLine, err := newLine(conns, color.RGBA{G: 130, A: 255})
	if err != nil {
		return err
	}
	middle.Add(connLine, plotter.NewGrid())
	top.X.Min, top.X.Max = middle.X.Min, middle.X.Max
	rows := [][]*plot.Plot{{top}, {middle}}
	if hasRate {
		bottom := plot.New()
		bottom.X.Label.Text = "Minutes Elapsed"
		bottom.Y.Label.Text = "Received msgs/s"
		bottom.Y.Min = 0
		rateLine, err := newLine(rate, color.RGBA{R: 200, G: 120, A: 255})
		if err != nil {
			return err
		}
		bottom.Add(rateLine, plotter.NewGrid())
		bottom.X.Min, bottom.X.Max = middle.X.Min, middle.X.Max
		middle.X.Label.Text = ""
		rows = append(rows, []*plot.Plot{bottom})
	}

	width, height := 8*vg.Inch, vg.Length(2+1.5*float64(len(rows)))*vg.Inch
	c, err := draw.NewFormattedCanvas(width, height, format)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(6)}
	canvases := plot.Align(rows, tiles, dc)
	for i, row := range rows {
		row[0].Draw(canvases[i][0])
	}
	_, err = c.WriteTo(w)
	return err
}

// DefaultTitle titles a chart from its samples, like the original's "Mem
// usage with 10k active connections, 1000 msg/sec".
func DefaultTitle(samples []Sample) string {
	peak := 0
	for _, s := range samples {
		peak = max(peak, s.Conns)
	}
	d := samples[len(samples)-1].Time.Sub(samples[0].Time).Round(1e9)
	return fmt.Sprintf("Gateway memory with %d connections, over %s", peak, d)
}

func newLine(xys plotter.XYs, c color.Color) (*plotter.Line, error) {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	return l, nil
}
