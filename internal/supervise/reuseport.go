package supervise

import (
	"context"
	"flag"
	"net"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cometgw/comet/internal/cli"
)

// ReusePort is the plumbing of a baseline server of the benches (bench/naive,
// bench/naivews): it adds -addr, -procs and -child to fs and parses args.
// With -procs N > 1 it runs N copies of this program as children and
// returns a nil listener once they have stopped; otherwise (or in a
// child) it returns a listener on -addr with SO_REUSEPORT, which the
// copies share.
func ReusePort(ctx context.Context, fs *flag.FlagSet, args []string) (net.Listener, error) {
	addr := fs.String("addr", "127.0.0.1:8600", "listen address")
	procs := fs.Int("procs", 1, "processes sharing the port")
	child := fs.Bool("child", false, "run as one of -procs (set by the parent)")
	if err := cli.Parse(fs, args); err != nil {
		return nil, err
	}
	if *procs > 1 && !*child {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return nil, Run(ctx, Config{N: *procs, Command: func(int) *exec.Cmd {
			c := exec.Command(self, "-child", "-addr", *addr)
			c.Stdout, c.Stderr = os.Stdout, os.Stderr
			return c
		}})
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
	}}
	return lc.Listen(ctx, "tcp", *addr)
}
