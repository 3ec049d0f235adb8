package obs

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	const secret = "s3cr3t-MARKER.tok_en"
	for _, in := range []string{
		"GET /sse/1?token=" + secret + "&x=1 HTTP/1.1",
		"GET /sse/1?access_token=" + secret + " HTTP/1.1",
		"Authorization: Bearer " + secret,
		"authorization:bearer " + secret,
		"Cookie: comet_token=" + secret + "; other=1",
		`error when reading request headers: "Authorization: Basic ` + secret + `\r\n"`,
		"nats://user:" + secret + "@127.0.0.1:4222",
		"nats://" + secret + "@127.0.0.1:4222,nats://127.0.0.1:4223",
		"password=" + secret,
		"nats://user:" + secret + "@x@127.0.0.1:4222", // an @ in the password
	} {
		out := Redact(in)
		if strings.Contains(out, "MARKER") {
			t.Errorf("Redact(%q) = %q: the secret stays", in, out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("Redact(%q) = %q: no mark of what was taken", in, out)
		}
	}
	for _, in := range []string{"GET /sse/1 HTTP/1.1", "nats://127.0.0.1:4222", "cannot parse id \"x\""} {
		if out := Redact(in); out != in {
			t.Errorf("Redact(%q) = %q: changed text with no secret", in, out)
		}
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("GET /?token=abc HTTP/1.1\r\nAuthorization: Bearer xyz\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s)
		if strings.Contains(strings.ToLower(s), "token=") && strings.Contains(out, "token=") && !strings.Contains(out, "token=redacted") && !strings.Contains(strings.ToLower(out), "token=redacted") {
			// every token= must be followed by its redaction
			for _, part := range strings.Split(strings.ToLower(out), "token=")[1:] {
				if !strings.HasPrefix(part, "redacted") && part != "" && !strings.ContainsAny(part[:1], "&\"\\ \t\r\n") {
					t.Fatalf("Redact(%q) = %q", s, out)
				}
			}
		}
	})
}
