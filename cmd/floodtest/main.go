// Command floodtest opens many streaming clients at a set arrival rate,
// counts {Active, Closed, Chunks} like the original, checks every message
// it receives, and logs the gateway's memory over time:
//
//	floodtest -url http://127.0.0.1:8000/test/ -n 10000 -rate 100/s [flags]
//	floodtest -urls FILE -wait 10ms [flags]
//	floodtest plot mochimem.log -o mem.png
//	floodtest curve sweep.csv -o latency.svg -log
//	floodtest report -dir study/RUN
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/cometgw/comet/internal/cli"
)

func main() {
	// floodtest's live heap is tiny (56 bytes a client); a low GC target
	// keeps the instrument lighter than what it measures. GOGC overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	cli.Main("floodtest", run)
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "plot":
			return runPlot(args[1:])
		case "curve":
			return runCurve(args[1:])
		case "report":
			return runReport(args[1:])
		case "worker":
			return runWorker(ctx, args[1:])
		}
	}
	return runFlood(ctx, args)
}
