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
)

// adminFlags are the flags every verb shares.
func adminFlags(name, usage string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("router "+name, flag.ContinueOnError)
	addr := fs.String("admin", "127.0.0.1:8001", "the running router's admin address")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router %s [-admin ADDR] %s\n\nFlags:\n", name, usage)
		fs.PrintDefaults()
	}
	return fs, addr
}

// call makes one admin API request and returns the JSON body, or an error
// carrying the router's message.
func call(ctx context.Context, method, addr, path string, body io.Reader) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, method, addr+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("router admin at %s unreachable (is the router running?): %w", addr, err)
	}
	defer resp.Body.Close()
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
