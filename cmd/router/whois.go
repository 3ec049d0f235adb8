package main

import (
	"context"
	"fmt"
	"os"
)

// runWhois is `router whois ID`: the conns logged in as ID.
func runWhois(ctx context.Context, args []string) error {
	fs, addr := adminFlags("whois", "ID")
	id, err := idArg(fs, args)
	if err != nil {
		return err
	}
	out, err := call(ctx, "GET", addr, fmt.Sprintf("/ids/%d", id), nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}
