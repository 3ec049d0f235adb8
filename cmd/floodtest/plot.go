package main

import (
	"flag"
	"fmt"
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
	// Accept the log before or after the flags.
	var log string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		log, args = args[0], args[1:]
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if log == "" && fs.NArg() == 1 {
		log = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return cli.Usagef("plot takes one log file")
	}
	if log == "" || *out == "" {
		fs.Usage()
		return cli.Usagef("plot needs a log file and -o")
	}
	format, err := flood.PlotFormat(*out)
	if err != nil {
		return cli.Usagef("%v", err)
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
	w, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := flood.Plot(samples, *title, format, w); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
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
	var table string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		table, args = args[0], args[1:]
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if table == "" && fs.NArg() == 1 {
		table = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return cli.Usagef("curve takes one table")
	}
	if table == "" || *out == "" {
		fs.Usage()
		return cli.Usagef("curve needs a table and -o")
	}
	format, err := flood.PlotFormat(*out)
	if err != nil {
		return cli.Usagef("%v", err)
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
	w, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := flood.PlotCurve(c, *title, *ylabel, *logY, format, w); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	fmt.Printf("floodtest: wrote %s (%d rows)\n", *out, len(c.Rows))
	return nil
}
