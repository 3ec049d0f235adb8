// Command router is the message router: it holds every gateway's logins and
// routes sends to them over NATS, starting an embedded nats-server unless
// -nats names one. Its verbs talk to a running router's admin API:
//
//	router [flags]                 run the router
//	router send ID MESSAGE         send MESSAGE to everyone logged in as ID
//	router stats                   print the router's counters
//	router whois ID                list the conns logged in as ID
//	router publish TOPIC MESSAGE   send MESSAGE to every connection in TOPIC
//	router broadcast MESSAGE       send MESSAGE to every connection
//	router presence TOPIC          list the ids in TOPIC and their connections
//	router subscribe ID TOPIC      store a subscription (and unsubscribe, subscriptions ID)
//	router subscribe -file F       store every "id,topic" line of F
//	router kick ID                 end every session of ID, on every gateway
//	router gateways                list the gateways and what is in flight to them
//	router nats-auth -dir DIR      write NATS NKeys and permissions per role
//	router config                  print the effective configuration (flags, COMET_ROUTER_*, -config)
//	router version                 print the version
package main

import (
	"context"

	"github.com/cometgw/comet/internal/cli"
)

func main() { cli.Main("router", run) }

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "send":
			return runSend(ctx, args[1:])
		case "stats":
			return runStats(ctx, args[1:])
		case "whois":
			return runWhois(ctx, args[1:])
		case "publish":
			return runPublish(ctx, args[1:])
		case "broadcast":
			return runBroadcast(ctx, args[1:])
		case "presence":
			return runPresence(ctx, args[1:])
		case "subscribe":
			return runSubscribe(ctx, args[1:], "subscribe")
		case "unsubscribe":
			return runSubscribe(ctx, args[1:], "unsubscribe")
		case "subscriptions":
			return runSubscriptions(ctx, args[1:])
		case "kick":
			return runKick(ctx, args[1:])
		case "gateways":
			return runGateways(ctx, args[1:])
		case "nats-auth":
			return runNATSAuth(ctx, args[1:])
		case "serve":
			return runServe(ctx, args[1:])
		case "config", "version":
			return runServe(ctx, args)
		case "help":
			return runServe(ctx, []string{"-h"})
		}
	}
	return runServe(ctx, args)
}
