package cli

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testFlags() (*flag.FlagSet, *Settings, *int, *time.Duration, *string, *bool) {
	fs := flag.NewFlagSet("gw", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("writers", 2, "")
	d := fs.Duration("write-timeout", 10*time.Second, "")
	u := fs.String("nats", "nats://127.0.0.1:4222", "")
	b := fs.Bool("ws-send", false, "")
	return fs, NewSettings(fs, "COMET_TEST"), n, d, u, b
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSettingsPrecedence: flag > environment > file > default, for every
// flag, and the printed configuration reads back to the same values.
func TestSettingsPrecedence(t *testing.T) {
	file := writeFile(t, "writers = 5\nwrite-timeout = \"7s\"\nnats = \"nats://u:secret@h:4222\"\nws-send = true\n")
	t.Setenv("COMET_TEST_WRITERS", "4")
	t.Setenv("COMET_TEST_WRITE_TIMEOUT", "3s")
	fs, s, n, d, u, b := testFlags()
	if err := s.Parse([]string{"-config", file, "-writers", "3"}); err != nil {
		t.Fatal(err)
	}
	if *n != 3 || *d != 3*time.Second || *u != "nats://u:secret@h:4222" || !*b {
		t.Fatalf("writers %d (flag 3), timeout %s (env 3s), nats %s, ws-send %v (file)", *n, *d, *u, *b)
	}
	var out bytes.Buffer
	s.Print(&out)
	if strings.Contains(out.String(), "secret") {
		t.Fatalf("the printed configuration shows a secret:\n%s", out.String())
	}
	for _, want := range []string{"writers = 3 # flag", `write-timeout = "3s" # environment COMET_TEST_WRITE_TIMEOUT`, "ws-send = true # file"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed configuration lacks %q:\n%s", want, out.String())
		}
	}
	// What it prints is a file -config reads (the redacted URL aside).
	printed := strings.ReplaceAll(out.String(), "nats = ", "# nats = ")
	os.Unsetenv("COMET_TEST_WRITERS")
	os.Unsetenv("COMET_TEST_WRITE_TIMEOUT")
	_, s2, n2, d2, _, b2 := testFlags()
	if err := s2.Parse([]string{"-config", writeFile(t, printed)}); err != nil {
		t.Fatalf("reading the printed configuration back: %v\n%s", err, printed)
	}
	if *n2 != 3 || *d2 != 3*time.Second || !*b2 {
		t.Fatalf("read back: writers %d timeout %s ws-send %v", *n2, *d2, *b2)
	}
	_ = fs
}

// TestSettingsRefuse: an unknown key in the file, an unknown variable
// with the prefix, a bad value, are usage errors naming them.
func TestSettingsRefuse(t *testing.T) {
	for _, tc := range []struct {
		name, file, env, want string
	}{
		{"unknown key", "wrtiers = 3\n", "", `"wrtiers"`},
		{"bad value", "writers = \"many\"\n", "", "writers"},
		{"unknown variable", "", "COMET_TEST_WRTIERS", "COMET_TEST_WRTIERS"},
		{"bad variable", "", "COMET_TEST_WRITE_TIMEOUT", "write-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.file != "" {
				args = []string{"-config", writeFile(t, tc.file)}
			}
			if tc.env != "" {
				t.Setenv(tc.env, "soon")
			}
			_, s, _, _, _, _ := testFlags()
			err := s.Parse(args)
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a usage error naming %s", err, tc.want)
			}
		})
	}
	_, s, _, _, _, _ := testFlags()
	if err := s.Parse([]string{"-config", filepath.Join(t.TempDir(), "none.toml")}); err == nil {
		t.Fatal("a missing -config file was not an error")
	}
}

// TestDone: version and config verbs, -check-config with a configuration
// that cannot work.
func TestDone(t *testing.T) {
	_, s, _, _, _, _ := testFlags()
	s.Parse(nil)
	var out bytes.Buffer
	if done, err := s.Done("version", nil, &out); !done || err != nil || !strings.HasPrefix(out.String(), "gw ") {
		t.Fatalf("version: %v %v %q", done, err, out.String())
	}
	_, s, _, _, _, _ = testFlags()
	s.Parse([]string{"-check-config"})
	bad := errors.New("cannot work")
	if done, err := s.Done("", func() error { return bad }, io.Discard); !done || err != bad {
		t.Fatalf("check-config of a bad configuration: %v %v", done, err)
	}
	_, s, _, _, _, _ = testFlags()
	s.Parse(nil)
	if done, _ := s.Done("", func() error { return nil }, io.Discard); done {
		t.Fatal("a plain run was done before it started")
	}
}
