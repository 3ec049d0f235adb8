package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/ids"
	"github.com/cometgw/comet/internal/obs"
)

// admin is where a verb finds the running router's admin API.
type admin struct {
	addr, tokenFile string
}

// adminFlags are the flags every verb shares.
func adminFlags(name, usage string) (*flag.FlagSet, *admin) {
	fs := flag.NewFlagSet("router "+name, flag.ContinueOnError)
	a := new(admin)
	fs.StringVar(&a.addr, "admin", "127.0.0.1:8001", "the running router's admin address")
	fs.StringVar(&a.tokenFile, "admin-token-file", "", "file holding the admin API's bearer token, if it asks for one")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router %s [-admin ADDR] [-admin-token-file FILE] %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs, a
}

// call makes one admin API request and returns the JSON body, or an error
// carrying the router's message.
func call(ctx context.Context, method string, a *admin, path string, body io.Reader) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addr := a.addr
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, method, addr+path, body)
	if err != nil {
		return nil, err
	}
	if a.tokenFile != "" {
		tok, err := obs.ReadToken(a.tokenFile)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("router admin at %s unreachable (is the router running?): %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("router admin at %s: %s (give -admin-token-file)", addr, resp.Status)
	}
	var out map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s %s: %s, and the body is not JSON: %w", method, path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("%s", out["error"])
	}
	return out, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseArgs parses a verb's flags and checks it got n arguments (want
// names them in the usage error).
func parseArgs(fs *flag.FlagSet, args []string, n int, want string) error {
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != n {
		fs.Usage()
		return cli.Usagef("%s takes %s", strings.TrimPrefix(fs.Name(), "router "), want)
	}
	return nil
}

// idArg parses a verb's flags and its one argument, an id.
func idArg(fs *flag.FlagSet, args []string) (int64, error) {
	if err := parseArgs(fs, args, 1, "an id"); err != nil {
		return 0, err
	}
	id, err := ids.Parse(fs.Arg(0))
	if err != nil {
		return 0, cli.Usagef("bad id: %v", err)
	}
	return id, nil
}
