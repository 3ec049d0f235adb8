package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cli"
	"github.com/cometgw/comet/internal/gateway"
	"github.com/cometgw/comet/internal/supervise"
)

// perProcessStreams is how many streams one process can hold: its
// open-files limit (Go raises the soft limit to the hard one) less room for
// everything else.
func perProcessStreams() int {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Max < 1024 {
		return 1000
	}
	return int(min(rl.Max, 1<<24)) - 512
}

// parseProcs reads -procs: a count, or auto.
func parseProcs(s string, expect int) (int, error) {
	if s == "auto" {
		n := runtime.NumCPU()
		if expect > 0 {
			per := perProcessStreams()
			n = max(n, (expect+per-1)/per)
		}
		return n, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 4096 {
		return 0, cli.Usagef("-procs %q: want 1..4096 or auto", s)
	}
	return n, nil
}

// superviseProcs runs procs gateway processes on one port, each its own
// identity to the router (NAME-0, NAME-1, ...) with its own admin port
// (the -admin port plus its index), restarting any that dies and stopping
// all on SIGTERM.
func superviseProcs(ctx context.Context, fs *flag.FlagSet, cfg gateway.Config, procs int, log *zap.Logger) error {
	var adminHost string
	adminPort := 0
	if cfg.AdminAddr != "off" {
		h, p, err := net.SplitHostPort(cfg.AdminAddr)
		if err != nil {
			return cli.Usagef("-admin %q: %v", cfg.AdminAddr, err)
		}
		if adminPort, err = strconv.Atoi(p); err != nil || adminPort == 0 {
			return cli.Usagef("-admin %q: with -procs the admin port must be a fixed number (process i uses port+i)", cfg.AdminAddr)
		}
		adminHost = h
	}
	// Every flag the user set is passed on, but those set per process.
	var common []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "procs", "expect", "name", "admin", "reuseport", "check-config", "version":
		default:
			common = append(common, "-"+f.Name+"="+f.Value.String())
		}
	})
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log.Info("starting gateway processes", zap.Int("procs", procs), zap.String("addr", cfg.Addr),
		zap.Int("streams_per_process", perProcessStreams()))
	return supervise.Run(ctx, supervise.Config{
		N: procs,
		Command: func(i int) *exec.Cmd {
			// -procs 1: a process's environment or -config file may
			// say more (COMET_GATEWAY_PROCS), which is the parent's.
			args := append([]string{"-procs", "1", "-reuseport", "-name", fmt.Sprintf("%s-%d", cfg.Name, i)}, common...)
			if adminPort > 0 {
				args = append(args, "-admin", net.JoinHostPort(adminHost, strconv.Itoa(adminPort+i)))
			} else {
				args = append(args, "-admin", "off")
			}
			cmd := exec.Command(self, args...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			return cmd
		},
		Logger: log,
	})
}
