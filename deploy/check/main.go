// Command check validates Prometheus alert rule files as promtool check
// rules does (the rulefmt parser: the file's structure, every PromQL
// expression, every template), without building promtool. It prints
// each file's rule count and fails on the first error.
//
//	go run ./deploy/check deploy/prometheus/comet-alerts.yml
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: check RULES.yml...")
		os.Exit(2)
	}
	for _, f := range os.Args[1:] {
		// As promtool check rules calls it (cmd/promtool/main.go).
		groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
		if len(errs) > 0 {
			for _, err := range errs {
				fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			}
			os.Exit(1)
		}
		n := 0
		for _, g := range groups.Groups {
			n += len(g.Rules)
		}
		fmt.Printf("%s: %d groups, %d rules: SUCCESS\n", f, len(groups.Groups), n)
	}
}
