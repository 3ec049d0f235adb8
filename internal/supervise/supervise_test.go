package supervise

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestartAndStop: a process that dies is restarted; all stop on
// cancel with SIGTERM.
func TestRestartAndStop(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{N: 2, Command: func(i int) *exec.Cmd {
			// Process 0 dies at once (each start leaves a mark); process
			// 1 runs until SIGTERM, which it handles by exiting 0.
			if i == 0 {
				return exec.Command("sh", "-c", "echo x >> "+filepath.Join(dir, "starts")+"; exit 3")
			}
			return exec.Command("sh", "-c", "trap 'exit 0' TERM; echo up > "+filepath.Join(dir, "up")+"; while :; do sleep 0.05; done")
		}, MaxBackoff: 50 * time.Millisecond})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "starts"))
		_, upErr := os.Stat(filepath.Join(dir, "up"))
		if strings.Count(string(b), "x") >= 3 && upErr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarts seen: %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("processes not stopped")
	}
}

func TestBadConfig(t *testing.T) {
	if err := Run(context.Background(), Config{}); err == nil {
		t.Fatal("accepted N=0")
	}
	err := Run(context.Background(), Config{N: 1, Command: func(int) *exec.Cmd { return exec.Command("/nonexistent/x") }})
	if err == nil {
		t.Fatal("started a missing binary")
	}
}
