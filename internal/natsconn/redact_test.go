package natsconn

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                         "nats://127.0.0.1:4222",
		"nats://u:MARK@h:4222,nats://h2:4222":           "nats://redacted@h:4222,nats://h2:4222",
		"tok-MARK@h:4222":                               "nats://redacted@h:4222",
		"nats://u:MA@RK@h:4222, nats://MARKtoken@h3:42": "nats://redacted@h:4222,nats://redacted@h3:42",
	} {
		got := Redact(in)
		if got != want || strings.Contains(got, "MA") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
