package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/flood"
)

// runPlot is `floodtest plot LOG -o OUT`: the memory log as a chart.
func runPlot(args []string) error {
	fs := flag.NewFlagSet("floodtest plot", flag.ContinueOnError)
	out := fs.String("o", "", "output file: .png, .svg or .pdf")
	title := fs.String("title", "", "chart title (default: from the log)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: floodtest plot LOG -o OUT.png|.svg|.pdf [-title T]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	log, format, err := chartArgs(fs, args, "plot", "log file", out)
	if err != nil {
		return err
	}
	f, err := os.Open(log)
	if err != nil {
		return err
	}
	samples, err := flood.ReadMemlog(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", log, err)
	}
	if len(samples) == 0 {
		return fmt.Errorf("%s: no samples", log)
	}
	if *title == "" {
		*title = flood.DefaultTitle(samples)
	}
	if err := writeChart(*out, func(w io.Writer) error { return flood.Plot(samples, *title, format, w) }); err != nil {
		return err
	}
	fmt.Printf("floodtest: wrote %s (%d samples)\n", *out, len(samples))
	return nil
}

// runCurve is `floodtest curve CSV -o OUT`: a sweep's table as a chart.
func runCurve(args []string) error {
	fs := flag.NewFlagSet("floodtest curve", flag.ContinueOnError)
	out := fs.String("o", "", "output file: .png, .svg or .pdf")
	title := fs.String("title", "", "chart title")
	ylabel := fs.String("y", "", "y axis label")
	logY := fs.Bool("log", false, "log scale for y")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: floodtest curve TABLE.csv -o OUT.png|.svg|.pdf [-title T] [-y LABEL] [-log]\n\n"+
			"TABLE.csv: a header naming x and each series, then rows of numbers.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	table, format, err := chartArgs(fs, args, "curve", "table", out)
	if err != nil {
		return err
	}
	f, err := os.Open(table)
	if err != nil {
		return err
	}
	c, err := flood.ReadCurve(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", table, err)
	}
	if err := writeChart(*out, func(w io.Writer) error { return flood.PlotCurve(c, *title, *ylabel, *logY, format, w) }); err != nil {
		return err
	}
	fmt.Printf("floodtest: wrote %s (%d rows)\n", *out, len(c.Rows))
	return nil
}

// chartArgs parses a chart verb's arguments: its one input file (a
// what, before or after the flags) and the -o output, whose name gives
// the image format.
func chartArgs(fs *flag.FlagSet, args []string, verb, what string, out *string) (in, format string, err error) {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		in, args = args[0], args[1:]
	}
	if err := cli.Parse(fs, args); err != nil {
		return "", "", err
	}
	if in == "" && fs.NArg() == 1 {
		in = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return "", "", cli.Usagef("%s takes one %s", verb, what)
	}
	if in == "" || *out == "" {
		fs.Usage()
		return "", "", cli.Usagef("%s needs a %s and -o", verb, what)
	}
	format, err = flood.PlotFormat(*out)
	if err != nil {
		return "", "", cli.Usagef("%v", err)
	}
	return in, format, nil
}

// writeChart creates path and draws into it.
func writeChart(path string, draw func(io.Writer) error) error {
	w, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := draw(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
