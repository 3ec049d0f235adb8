package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/natsconn"
)

// runNATSAuth is `router nats-auth -dir DIR`: an NKey per role and the
// NATS authorization that confines each role to its subjects.
func runNATSAuth(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("nats-auth", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write the NKey seeds and nats-auth.conf in (created; existing files are not overwritten)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: router nats-auth -dir DIR

Writes an NKey for each role of the system (DIR/router.nk, gateway.nk,
sender.nk: seeds, keep them secret) and DIR/nats-auth.conf, a nats-server
authorization block that lets each role publish and subscribe to its own
subjects only. Then:

  router  -nats-config DIR/nats-auth.conf -nats-nkey DIR/router.nk ...
  gateway -nats-nkey DIR/gateway.nk ...
  msggen  -nats-nkey DIR/sender.nk ...

(or include nats-auth.conf in your own nats-server's configuration).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		fs.Usage()
		return cli.Usagef("nats-auth needs -dir and no arguments")
	}
	files, err := natsconn.WriteRoles(*dir)
	if err != nil {
		return fmt.Errorf("nats-auth: %w", err)
	}
	for _, f := range files {
		fmt.Fprintln(os.Stdout, f)
	}
	return nil
}
