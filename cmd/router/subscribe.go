package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/subs"
)

// runSubscribe is `router subscribe ID TOPIC` and `router unsubscribe ID
// TOPIC` (through the admin API), and `router subscribe -file subs.csv`
// (straight to the subscriptions' stream on NATS, for millions).
func runSubscribe(ctx context.Context, args []string, verb string) error {
	fs, addr := adminFlags(verb, "ID TOPIC")
	file := fs.String("file", "", `with subscribe: store every "id,topic" line of this file (CSV; - for stdin) through NATS`)
	compact := fs.Bool("compact", false, "with subscribe: rewrite the subscriptions' stream as the subscriptions it holds now, through NATS (unsubscribed and repeated records stop costing every router's replay); routers keep serving")
	natsURL := fs.String("nats", nats.DefaultURL, "with -file or -compact: the routers' NATS server")
	var creds natsconn.Credentials
	creds.AddFlags(fs)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *file != "" || *compact {
		if verb != "subscribe" || fs.NArg() > 0 || *file != "" && *compact {
			fs.Usage()
			return cli.Usagef("-file or -compact goes with subscribe and no arguments")
		}
		nc, st, err := openStream(ctx, *natsURL, creds, "router subscribe")
		if err != nil {
			return err
		}
		defer nc.Close()
		if *compact {
			return compactStream(ctx, st)
		}
		return loadFile(ctx, *file, st)
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return cli.Usagef("%s takes an id and a topic", verb)
	}
	id, err := ids.Parse(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("bad id: %w", err)
	}
	if err := checkTopic(fs.Arg(1)); err != nil {
		return err
	}
	method := "PUT"
	if verb == "unsubscribe" {
		method = "DELETE"
	}
	out, err := call(ctx, method, addr, fmt.Sprintf("/subscriptions/%d/%s", id, url.PathEscape(fs.Arg(1))), nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}

// runSubscriptions is `router subscriptions ID`.
func runSubscriptions(ctx context.Context, args []string) error {
	fs, addr := adminFlags("subscriptions", "ID")
	id, err := idArg(fs, args)
	if err != nil {
		return err
	}
	out, err := call(ctx, "GET", addr, fmt.Sprintf("/subscriptions/%d", id), nil)
	if err != nil {
		return err
	}
	return printJSON(os.Stdout, out)
}

// openStream connects to NATS and finds the subscriptions' stream.
func openStream(ctx context.Context, natsURL string, creds natsconn.Credentials, name string) (*nats.Conn, *subs.Stream, error) {
	more, err := creds.Options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := natsconn.Connect(natsURL, natsconn.Options{Name: name, More: more})
	if err != nil {
		return nil, nil, err
	}
	st, err := subs.Find(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, st, nil
}

// compactStream rewrites the subscriptions' stream, with progress.
func compactStream(ctx context.Context, st *subs.Stream) error {
	start, last := time.Now(), time.Now()
	fmt.Fprintln(os.Stdout, "router subscribe: reading the stream")
	c, err := st.Compact(ctx, func(n int) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stdout, "router subscribe: %d batches of the snapshot stored\n", n)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "router subscribe: compacted in %s: %d subscriptions in %d batches; %d batches purged; %d bytes before, %d after (%d snapshots begun)\n",
		time.Since(start).Round(time.Millisecond), c.Subscriptions, c.Batches, c.Purged, c.BytesBefore, c.BytesAfter, c.Tries)
	return nil
}

// loadFile stores a CSV file's subscriptions, with progress every second.
func loadFile(ctx context.Context, name string, st *subs.Stream) error {
	f := os.Stdin
	if name != "-" {
		var err error
		if f, err = os.Open(name); err != nil {
			return err
		}
		defer f.Close()
	}
	start, last := time.Now(), time.Now()
	n, err := subs.Load(ctx, st, f, func(n int) {
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stdout, "router subscribe: %d stored (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
		}
	})
	took := time.Since(start)
	fmt.Fprintf(os.Stdout, "router subscribe: %d subscriptions stored in %s (%.0f/s)\n", n, took.Round(time.Millisecond), float64(n)/max(took.Seconds(), 1e-9))
	if err != nil {
		return fmt.Errorf("%s: %w (the %d before it are stored)", name, err, n)
	}
	return nil
}
