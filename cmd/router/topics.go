package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/wire"
)

// runPublish is `router publish TOPIC MESSAGE`: the message to every
// connection in the topic.
func runPublish(ctx context.Context, args []string) error {
	fs, addr := adminFlags("publish", "TOPIC MESSAGE")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return cli.Usagef("publish takes a topic and a message")
	}
	topic := fs.Arg(0)
	if err := checkTopic(topic); err != nil {
		return err
	}
	out, err := call(ctx, "POST", addr, "/publish/"+url.PathEscape(topic), strings.NewReader(strings.Join(fs.Args()[1:], " ")))
	if err != nil {
		return err
	}
	report("published to "+topic, out)
	return nil
}

// runBroadcast is `router broadcast MESSAGE`: the message to every
// connection.
func runBroadcast(ctx context.Context, args []string) error {
	fs, addr := adminFlags("broadcast", "MESSAGE")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return cli.Usagef("broadcast takes a message")
	}
	out, err := call(ctx, "POST", addr, "/broadcast", strings.NewReader(strings.Join(fs.Args(), " ")))
	if err != nil {
		return err
	}
	report("broadcast", out)
	return nil
}

// runPresence is `router presence TOPIC`: the ids in the topic and their
// connections, as JSON.
func runPresence(ctx context.Context, args []string) error {
	fs, addr := adminFlags("presence", "TOPIC")
	if err := parseArgs(fs, args, 1, "a topic"); err != nil {
		return err
	}
	if err := checkTopic(fs.Arg(0)); err != nil {
		return err
	}
	out, err := call(ctx, "GET", addr, "/topics/"+url.PathEscape(fs.Arg(0)), nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}

func checkTopic(topic string) error {
	if !wire.ValidTopic([]byte(topic)) {
		return cli.Usagef("bad topic %q: want 1 to %d of A-Z a-z 0-9 : . _ -", topic, wire.MaxTopic)
	}
	return nil
}

// runKick is `router kick ID`: every session of the id, on every
// gateway, ends (as at a gateway's shutdown).
func runKick(ctx context.Context, args []string) error {
	fs, addr := adminFlags("kick", "ID")
	id, err := idArg(fs, args)
	if err != nil {
		return err
	}
	out, err := call(ctx, "POST", addr, "/kick/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "kicked %v session(s) of %d\n", out["kicked"], id)
	return nil
}

// runGateways is `router gateways`: the gateways the router knows, with
// their sessions, last heartbeat and what is in flight to them.
func runGateways(ctx context.Context, args []string) error {
	fs, addr := adminFlags("gateways", "")
	if err := parseArgs(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	out, err := call(ctx, "GET", addr, "/stats", nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out["gateway_list"])
}
