package supervise

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Config configures a supervisor.
type Config struct {
	// N is the number of processes.
	N int
	// Command returns the command for process i (a fresh one per start).
	Command func(i int) *exec.Cmd
	// StopTimeout is how long processes get to exit after SIGTERM before
	// SIGKILL. Default 30s.
	StopTimeout time.Duration
	// MaxBackoff bounds the wait before restarting a process that keeps
	// dying. Default 10s.
	MaxBackoff time.Duration
	Logger     *zap.Logger
}

// Run starts the processes and keeps them running until ctx ends; then it
// sends each SIGTERM and waits. It returns an error if a process could not
// be started at all, or if one exited with an error at shutdown.
func Run(ctx context.Context, cfg Config) error {
	if cfg.N < 1 || cfg.Command == nil {
		return errors.New("supervise: need N >= 1 and a command")
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var wg sync.WaitGroup
	errs := make(chan error, cfg.N)
	for i := 0; i < cfg.N; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := keep(ctx, cfg, i, log); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// keep runs process i until ctx ends, restarting it when it dies.
func keep(ctx context.Context, cfg Config, i int, log *zap.Logger) error {
	// Pdeathsig fires when the thread that started the process exits:
	// keep this goroutine on one thread for as long as it supervises.
	runtime.LockOSThread()
	backoff := 100 * time.Millisecond
	for restarts := 0; ; restarts++ {
		cmd := cfg.Command(i)
		// If the supervisor dies, its processes are told to stop too.
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("supervise: start process %d: %w", i, err)
		}
		if restarts > 0 {
			log.Warn("process restarted", zap.Int("index", i), zap.Int("pid", cmd.Process.Pid), zap.Int("restarts", restarts))
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			log.Error("process died", zap.Int("index", i), zap.Error(err), zap.Duration("after", time.Since(start)))
			if time.Since(start) > time.Minute {
				backoff = 100 * time.Millisecond
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, cfg.MaxBackoff)
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					return fmt.Errorf("supervise: process %d: %w", i, err)
				}
				return nil
			case <-time.After(cfg.StopTimeout):
				cmd.Process.Kill()
				<-done
				return fmt.Errorf("supervise: process %d did not stop within %s; killed", i, cfg.StopTimeout)
			}
		}
	}
}
