package main

import (
	"context"
	"os"

	"github.com/cometgw/comet/internal/cli"
)

// runStats is `router stats`: the router's counters as JSON.
func runStats(ctx context.Context, args []string) error {
	fs, addr := adminFlags("stats", "")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("stats takes no arguments")
	}
	out, err := call(ctx, "GET", addr, "/stats", nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}
