package embeddednats

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap/zaptest"
)

func TestStartPublishShutdown(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0", Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	for _, opt := range []nats.Option{s.InProcess(), func(*nats.Options) error { return nil }} {
		nc, err := nats.Connect(s.ClientURL(), opt)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := nc.SubscribeSync("x")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("x", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != "hi" {
			t.Fatalf("got %v %v", m, err)
		}
		nc.Close()
	}
	s.Shutdown()
	if s.Running() == nil {
		t.Fatal("still running after Shutdown")
	}
	s.Shutdown() // idempotent
}

func TestBadAddress(t *testing.T) {
	for _, addr := range []string{"nope", "127.0.0.1:99999", "127.0.0.1:x"} {
		if _, err := Start(Config{Addr: addr}); err == nil {
			t.Errorf("Start(%q) succeeded", addr)
		}
	}
}

func TestPortInUse(t *testing.T) {
	s, err := Start(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if _, err := Start(Config{Addr: s.Addr().String(), ReadyTimeout: 2 * time.Second}); err == nil {
		t.Fatal("second server on the same port started")
	}
}
