package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/cometgw/comet/internal/cli"

	"github.com/cometgw/comet/internal/ids"
)

// runSend is `router send ID MESSAGE`: router:send(Id, Msg) of the original.
func runSend(ctx context.Context, args []string) error {
	fs, addr := adminFlags("send", "ID MESSAGE")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return cli.Usagef("send takes an id and a message")
	}
	id, err := ids.Parse(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("bad id: %w", err)
	}
	msg := strings.Join(fs.Args()[1:], " ")
	out, err := call(ctx, "POST", addr, fmt.Sprintf("/send/%d", id), strings.NewReader(msg))
	if err != nil {
		return err
	}
	report(fmt.Sprintf("sent to %d", id), out)
	return nil
}

// report prints what became of a send, publish or broadcast.
func report(what string, out map[string]any) {
	kept := ""
	if out["kept"] == true {
		kept = ", kept for resuming clients (or in the topic's history)"
	}
	dropped := ""
	if d, ok := out["dropped"].(map[string]any); ok {
		for _, why := range []string{"gone", "slow", "gateway"} {
			if n, _ := d[why].(float64); n > 0 {
				dropped += fmt.Sprintf(", %v dropped (%s)", n, dropNames[why])
			}
		}
	}
	fmt.Fprintf(os.Stdout, "%s: delivered to %v conn(s)%s%s\n", what, out["delivered"], dropped, kept)
}

var dropNames = map[string]string{
	"gone":    "the client had left",
	"slow":    "the client was too slow and was disconnected",
	"gateway": "its gateway went away or did not confirm it",
}
