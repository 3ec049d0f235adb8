package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cometgw/comet/internal/cli"

	"github.com/cometgw/comet/internal/ids"
)

// runWhois is `router whois ID`: the conns logged in as ID.
func runWhois(ctx context.Context, args []string) error {
	fs, addr := adminFlags("whois", "ID")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return cli.Usagef("whois takes one id")
	}
	id, err := ids.Parse(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("bad id: %w", err)
	}
	out, err := call(ctx, "GET", addr, fmt.Sprintf("/ids/%d", id), nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}
