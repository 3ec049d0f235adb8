package main

import (
	"context"
	"os"
)

// runStats is `router stats`: the router's counters as JSON.
func runStats(ctx context.Context, args []string) error {
	fs, addr := adminFlags("stats", "")
	if err := parseArgs(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	out, err := call(ctx, "GET", addr, "/stats", nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}
