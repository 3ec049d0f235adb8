package hub_test

import (
	"testing"

	"github.com/cometgw/comet/internal/hub"
)

// TestConfigValidate: the zero Config takes its defaults and is valid;
// bounds that cannot work are refused with the field named.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  hub.Config
		ok   bool
	}{
		{"zero", hub.Config{}, true},
		{"defaults", hub.DefaultConfig(), true},
		{"pending below a message", hub.Config{MaxPending: 100}, false},
		{"read budget", hub.Config{ReadBudget: 10}, false},
		{"too many sessions", hub.Config{MaxSessions: 1 << 25}, false},
		{"too many writers", hub.Config{Workers: 5000}, false},
		{"negative send buffer", hub.Config{SendBuffer: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
