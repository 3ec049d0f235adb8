package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/fftoml"

	"github.com/cometgw/comet/internal/obs"
)

// Settings reads a daemon's configuration the way operators expect
// (peterbourgon/ff over the standard flag set): a flag on the command
// line, else the environment variable Prefix_FLAG (the flag's name upper
// cased, '-' as '_': COMET_GATEWAY_WRITE_TIMEOUT), else the key of the
// same name in the TOML file -config names (write-timeout = "10s"), else
// the default. An unknown key in the file, or an unknown Prefix_
// variable, is an error naming it.
type Settings struct {
	fs      *flag.FlagSet
	prefix  string
	file    string
	check   bool
	version bool
	from    map[string]string // where each flag set got its value
}

// NewSettings adds -config, -check-config and -version to fs, whose
// environment variables start with prefix (COMET_GATEWAY).
func NewSettings(fs *flag.FlagSet, prefix string) *Settings {
	s := &Settings{fs: fs, prefix: prefix}
	fs.StringVar(&s.file, "config", "", "read flags from this TOML file (keys are the flag names: write-timeout = \"10s\"); flags and "+prefix+"_* environment variables win over it")
	fs.BoolVar(&s.check, "check-config", false, "check the configuration (flags, environment, -config file), print it, and exit")
	fs.BoolVar(&s.version, "version", false, "print the version and exit")
	return s
}

// Parse parses args, the environment and the file. Help is flag.ErrHelp;
// a bad flag, variable or key is an ErrUsage error.
func (s *Settings) Parse(args []string) error {
	if err := s.unknownEnv(); err != nil {
		return err
	}
	before := map[string]bool{}
	err := ff.Parse(s.fs, args, ff.WithEnvVarPrefix(s.prefix), ff.WithConfigFileFlag("config"), ff.WithConfigFileParser(fftoml.Parser))
	switch {
	case errors.Is(err, flag.ErrHelp):
		return err
	case err != nil:
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	// Where each value came from, for Print (flags first, as ff does).
	s.from = map[string]string{}
	cmdline := flag.NewFlagSet("", flag.ContinueOnError)
	cmdline.SetOutput(io.Discard)
	s.fs.VisitAll(func(f *flag.Flag) { cmdline.Var(noop{f.Value}, f.Name, "") })
	if cmdline.Parse(args) == nil {
		cmdline.Visit(func(f *flag.Flag) { before[f.Name] = true })
	}
	s.fs.Visit(func(f *flag.Flag) {
		switch {
		case before[f.Name]:
			s.from[f.Name] = "flag"
		case os.Getenv(s.envName(f.Name)) != "":
			s.from[f.Name] = "environment " + s.envName(f.Name)
		default:
			s.from[f.Name] = "file " + s.file
		}
	})
	return nil
}

// noop is a flag.Value that reports a flag's type (bool or not) without
// setting it, to see which flags the command line itself gave.
type noop struct{ v flag.Value }

func (n noop) String() string   { return "" }
func (n noop) Set(string) error { return nil }
func (n noop) IsBoolFlag() bool {
	b, ok := n.v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// envName is the environment variable of flag flagName (as ff names it).
func (s *Settings) envName(flagName string) string {
	return s.prefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(flagName))
}

// unknownEnv refuses a Prefix_ variable no flag has (a typo would
// otherwise be ignored silently).
func (s *Settings) unknownEnv() error {
	known := map[string]bool{}
	s.fs.VisitAll(func(f *flag.Flag) { known[s.envName(f.Name)] = true })
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, s.prefix+"_") && !known[name] {
			return fmt.Errorf("%w: environment variable %s names no flag of %s (see -h)", ErrUsage, name, s.fs.Name())
		}
	}
	return nil
}

// Version reports whether -version was given; it prints the version.
func (s *Settings) Version(w io.Writer) bool {
	if s.version {
		fmt.Fprintln(w, s.fs.Name(), obs.BuildInfo())
	}
	return s.version
}

// CheckOnly reports whether -check-config was given.
func (s *Settings) CheckOnly() bool { return s.check }

// Print writes the effective configuration as a TOML file -config
// reads: every flag with its value (secrets in URLs redacted), a comment
// saying where a value that is not the default came from.
func (s *Settings) Print(w io.Writer) {
	fmt.Fprintf(w, "# %s %s: the effective configuration (flag > environment > -config file > default)\n", s.fs.Name(), obs.BuildInfo())
	var names []string
	s.fs.VisitAll(func(f *flag.Flag) {
		switch f.Name {
		case "config", "check-config", "version":
		default:
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	for _, name := range names {
		f := s.fs.Lookup(name)
		line := name + " = " + tomlValue(f.Value)
		if from := s.from[name]; from != "" {
			line += " # " + from
		}
		fmt.Fprintln(w, line)
	}
}

// tomlValue is v in TOML: booleans and numbers bare, everything else
// (durations included) a quoted string; secrets in URLs redacted.
func tomlValue(v flag.Value) string {
	str := obs.Redact(v.String())
	if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return str
	}
	if _, err := strconv.ParseFloat(str, 64); err == nil {
		return str
	}
	return strconv.Quote(str)
}

// Verbs are the verbs every daemon takes besides running: "config"
// prints the effective configuration, "version" the version.
var Verbs = []string{"config", "version"}

// Verb splits a leading "config" or "version" off args.
func Verb(args []string) (verb string, rest []string) {
	if len(args) > 0 && (args[0] == "config" || args[0] == "version") {
		return args[0], args[1:]
	}
	return "", args
}

// Done handles, after Parse, what ends a run before it starts: the
// version verb or flag (printed), the config verb or -check-config (the
// configuration checked with validate, then printed to w). done says the
// command is finished (with err, if the configuration cannot work).
func (s *Settings) Done(verb string, validate func() error, w io.Writer) (done bool, err error) {
	if verb == "version" {
		s.version = true
	}
	if s.Version(w) {
		return true, nil
	}
	if verb != "config" && !s.check {
		return false, nil
	}
	if err := validate(); err != nil {
		return true, err
	}
	s.Print(w)
	return true, nil
}
