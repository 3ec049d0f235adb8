package main

import (
	"context"
	"fmt"
	"os"
)

// runStats is `router stats`: the router's counters as JSON.
func runStats(ctx context.Context, args []string) error {
	fs, addr := adminFlags("stats", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: stats takes no arguments", errUsage)
	}
	out, err := call(ctx, "GET", *addr, "/stats", nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}
