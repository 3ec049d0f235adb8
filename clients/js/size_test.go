package cometjs

import (
	"bytes"
	"compress/gzip"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
)

// The library's size budget: minified and gzipped, as a bundler would
// ship it to a browser.
const budget = 8 << 10

// TestSize minifies comet.js with esbuild (for browsers of 2020 on),
// gzips it and holds it to the budget.
func TestSize(t *testing.T) {
	min := api.Transform(string(Source), api.TransformOptions{
		Loader:            api.LoaderJS,
		Format:            api.FormatESModule,
		Target:            api.ES2022,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
	})
	for _, e := range min.Errors {
		t.Fatalf("comet.js: %d:%d: %s", e.Location.Line, e.Location.Column, e.Text)
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	w.Write(min.Code)
	w.Close()
	t.Logf("comet.js: %d bytes, minified %d, minified and gzipped %d (budget %d)", len(Source), len(min.Code), gz.Len(), budget)
	if gz.Len() > budget {
		t.Fatalf("comet.js is %d bytes minified and gzipped, over the budget of %d", gz.Len(), budget)
	}
}

// TestTypes checks that comet.d.ts is TypeScript esbuild reads and
// declares every name comet.js exports.
func TestTypes(t *testing.T) {
	dts, err := os.ReadFile("comet.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	r := api.Transform(string(dts), api.TransformOptions{Loader: api.LoaderTS})
	for _, e := range r.Errors {
		t.Fatalf("comet.d.ts: %d:%d: %s", e.Location.Line, e.Location.Column, e.Text)
	}
	exported := regexp.MustCompile(`(?m)^export (?:class|function|const) (\w+)`)
	declared := regexp.MustCompile(`(?m)^export (?:declare )?(?:class|function|const|type|interface) (\w+)`)
	var have []string
	for _, m := range declared.FindAllSubmatch(dts, -1) {
		have = append(have, string(m[1]))
	}
	for _, m := range exported.FindAllSubmatch(Source, -1) {
		if !slices.Contains(have, string(m[1])) {
			t.Errorf("comet.js exports %s; comet.d.ts does not declare it", m[1])
		}
	}
}
