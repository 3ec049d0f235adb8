package obs

import (
	"fmt"
	"regexp"

	"go.uber.org/zap"
)

// secretInText finds what may carry a credential in a logged line: an
// Authorization, Cookie or Proxy-Authorization header's value, a bearer
// or basic credential, a token= (or access_token=, password=, ...) query
// parameter, and user information in a URL.
var secretInText = regexp.MustCompile(`(?i)((?:proxy-)?authorization|cookie|set-cookie)(\s*[:=]\s*)[^\r\n"]*` +
	`|(bearer|basic)\s+[A-Za-z0-9._~+/=-]+` +
	`|((?:access_|id_|refresh_)?token|password|passwd|secret|key)=[^&\s"\\]*` +
	`|(://)[^/\s"]*@`)

// Redact replaces what may be a credential in s with "redacted" (see
// secretInText).
func Redact(s string) string {
	return secretInText.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretInText.FindStringSubmatch(m)
		switch {
		case sub[1] != "":
			return sub[1] + sub[2] + "redacted"
		case sub[3] != "":
			return sub[3] + " redacted"
		case sub[4] != "":
			return sub[4] + "=redacted"
		default:
			return sub[5] + "redacted@"
		}
	})
}

// RedactingLogger is a Printf logger (fasthttp's Logger, a standard
// library ErrorLog) that writes to log at warn level, with credentials
// redacted and lines cut at 512 bytes: what a server logs of a request it
// could not parse holds the client's head, and the head its token.
type RedactingLogger struct{ Log *zap.Logger }

// Printf implements fasthttp.Logger.
func (l RedactingLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	l.Log.Warn(Redact(msg))
}
