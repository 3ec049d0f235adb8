// Command msggen spams the router with fake messages to random ids, like
// the original's [spawn(msggen:start(Num, Interval, Max)) || _ <- 1..P].
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cometgw/comet/internal/cli"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/msggen"
	"github.com/cometgw/comet/internal/natsconn"
	"github.com/cometgw/comet/internal/obs"
)

func main() { cli.Main("msggen", run) }

func run(ctx context.Context, args []string) error {
	verb, args := cli.Verb(args)
	cfg := msggen.DefaultConfig()
	fs := flag.NewFlagSet("msggen", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: msggen [flags]
       msggen config [flags]      print the effective configuration (TOML, for -config)
       msggen version

Runs -procs senders in parallel, each sending -n messages "Fake message
Num = K" to random ids in 1..-max, -interval apart (0: flat out), or
-rate messages/s in total. Every frame is acknowledged by the router.

Examples:
  msggen -n 20 -interval 10ms -max 5                 msggen:start(20, 10, 5)
  msggen -n 20 -interval 100ms -max 5 -procs 10      ten of them in parallel
  msggen -n 60000 -rate 1000 -max 10000 -procs 4     1,000 messages/s for a minute
  msggen -n 1000000 -interval 0 -max 10000           flat out
  msggen -n 1000 -rate 100 -topics 10                publish to topic-1..topic-10
  msggen -n 0 -broadcast-every 1s -duration 20s      a broadcast a second

Every flag may also come from the environment, COMET_MSGGEN_<FLAG>
(COMET_MSGGEN_ACK_TIMEOUT=6s), or from the TOML file -config names
(ack-timeout = "6s"); a flag wins over the environment, which wins over
the file.

Flags:
`)
		fs.PrintDefaults()
	}
	url := fs.String("nats", nats.DefaultURL, "NATS server the router listens on")
	fs.IntVar(&cfg.Num, "n", cfg.Num, "messages per sender")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "wait between a sender's messages; 0 sends flat out")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total messages per second over all senders (overrides -interval)")
	fs.Int64Var(&cfg.Max, "max", cfg.Max, "ids are random in 1..max")
	fs.IntVar(&cfg.Procs, "procs", cfg.Procs, "senders in parallel")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "most messages in one NATS frame (rate and flat-out modes)")
	fs.IntVar(&cfg.InFlight, "inflight", cfg.InFlight, "frames each sender keeps waiting for their acks (1 keeps ids in order across several routers, and across a takeover: a frame no router took is sent again before the next)")
	fs.DurationVar(&cfg.AckTimeout, "ack-timeout", cfg.AckTimeout, "how long to wait for the router to acknowledge a frame")
	fs.IntVar(&cfg.Resends, "resends", cfg.Resends, "times a frame with no ack within -ack-timeout is sent again before its messages count unacknowledged: a router that took it answers the copy instead of routing it twice, unless it died before logging it (docs/PROTOCOL.md, \"Sending a frame again\")")
	fs.DurationVar(&cfg.Every, "every", 5*time.Second, "print progress this often (0: never)")
	duration := fs.Duration("duration", 0, "stop after this long even if not done (0: no limit)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed for the random ids (0: random)")
	fs.BoolVar(&cfg.Numbered, "numbered", false, `append " seq=S" (1, 2, 3... per id) so receivers can count lost and repeated messages`)
	fs.IntVar(&cfg.Topics, "topics", 0, "publish to topics topic-1..topic-N instead of sending to ids 1..max (0: send to ids)")
	fs.StringVar(&cfg.TopicPrefix, "topic-prefix", msggen.DefaultTopicPrefix, "with -topics: the topics are PREFIX1..PREFIXN")
	fs.DurationVar(&cfg.BroadcastEvery, "broadcast-every", 0, `also broadcast "Broadcast #K" to every connection this often while sending (0: never)`)
	fs.BoolVar(&cfg.Stamp, "stamp", false, `append " t=<unix ns>" to every message, for receivers to measure latency`)
	fs.IntVar(&cfg.Partitions, "partitions", 1, "the routers' -partitions: send each id's messages straight to its partition's router (without it any router takes a frame and hands on what is another partition's)")
	summary := fs.String("summary", "", "write the final result as JSON to this file")
	var creds natsconn.Credentials
	creds.AddFlags(fs)
	settings := cli.NewSettings(fs, "COMET_MSGGEN")
	if err := settings.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	if done, err := settings.Done(verb, cfg.Validate, os.Stdout); done {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Num == 0 && cfg.BroadcastEvery > 0 && *duration == 0 {
		return cli.Usagef("-n 0 -broadcast-every broadcasts until -duration: give one")
	}
	cfg.Progress = os.Stdout
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	natsAuth, err := creds.Options()
	if err != nil {
		return err
	}
	log, err := obs.NewLogger("warn")
	if err != nil {
		return err
	}
	defer log.Sync()
	// Reconnecting, a router restart (and the NATS it embeds) costs the
	// frames sent while it is down only their wait: nats.go holds them
	// (64 MiB at most; past that a send fails and is counted) and sends
	// them on reconnect. Every frame still needs its ack within
	// -ack-timeout, so nothing held and lost is ever counted delivered.
	nc, err := natsconn.Connect(*url, natsconn.Options{Name: "msggen", Reconnect: true, Log: log, More: natsAuth})
	if err != nil {
		return err
	}
	defer nc.Close()
	res, err := msggen.Run(ctx, nc, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("msggen: %s\n", res)
	if *summary != "" {
		if err := res.WriteJSON(*summary); err != nil {
			return err
		}
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d frames were not acknowledged by the router", res.Errors)
	}
	return nil
}
