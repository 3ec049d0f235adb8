package natsconn

import (
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/cometgw/comet/internal/obs"
)

// Credentials are how a process proves itself to a NATS server that asks
// (user and password, or a token, may also be given in the URL:
// nats://user:password@host:4222, nats://token@host:4222).
type Credentials struct {
	// TokenFile holds a token (its first line).
	TokenFile string
	// NKeyFile holds an NKey seed (a user's private key; the server
	// knows its public key).
	NKeyFile string
	// CredsFile is a NATS credentials file (a user JWT and its NKey
	// seed, for servers using decentralized auth).
	CredsFile string
}

// AddFlags adds -nats-token-file, -nats-nkey and -nats-creds to fs, and
// -allow-open-secrets (obs.AllowOpenSecrets: every secret file of the
// process).
func (c *Credentials) AddFlags(fs *flag.FlagSet) {
	if fs.Lookup("allow-open-secrets") == nil {
		fs.BoolVar(&obs.AllowOpenSecrets, "allow-open-secrets", false, "read secret files (tokens, secrets, NKey seeds) that group or others may read (refused by default)")
	}
	fs.StringVar(&c.TokenFile, "nats-token-file", c.TokenFile, "file holding the token NATS asks for")
	fs.StringVar(&c.NKeyFile, "nats-nkey", c.NKeyFile, "file holding this process's NKey seed, for a NATS server that knows its public key")
	fs.StringVar(&c.CredsFile, "nats-creds", c.CredsFile, "NATS credentials file (user JWT and seed)")
}

// Options are the nats.Options for c.
func (c Credentials) Options() ([]nats.Option, error) {
	n := 0
	for _, f := range []string{c.TokenFile, c.NKeyFile, c.CredsFile} {
		if f != "" {
			n++
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("nats credentials: give one of a token file, an NKey seed or a credentials file")
	}
	switch {
	case c.TokenFile != "":
		tok, err := obs.ReadToken(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("nats token: %w", err)
		}
		return []nats.Option{nats.Token(tok)}, nil
	case c.NKeyFile != "":
		if err := obs.CheckSecretFile(c.NKeyFile); err != nil {
			return nil, fmt.Errorf("nats nkey: %w", err)
		}
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey %s: %w", c.NKeyFile, err)
		}
		return []nats.Option{o}, nil
	case c.CredsFile != "":
		if err := obs.CheckSecretFile(c.CredsFile); err != nil {
			return nil, fmt.Errorf("nats creds: %w", err)
		}
		return []nats.Option{nats.UserCredentials(c.CredsFile)}, nil
	}
	return nil, nil
}
