package backend

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNoCredentialInErrors: neither a refused URL nor a failed request
// says the password or token the URL carries.
func TestNoCredentialInErrors(t *testing.T) {
	for _, raw := range []string{"ftp://user:s3cret@host/x", "http:///x?token=s3cret", "user:s3cret@host/x", "http://host/%zz?token=s3cret"} {
		err := CheckURL("hook", raw)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.HasPrefix(err.Error(), "hook: ") {
			t.Errorf("%s: %v", raw, err)
		}
	}
	for _, raw := range []string{"http://127.0.0.1:1/x", "https://user:pw@example.com/hook?token=x"} {
		if err := CheckURL("hook", raw); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err := Client(time.Second, 4).Post("http://user:s3cret@"+addr+"/x?token=s3cret", "text/plain", nil)
	if err == nil || strings.Contains(Err(err).Error(), "s3cret") {
		t.Fatalf("a refused request: %v", Err(err))
	}
}

func TestNoRedirect(t *testing.T) {
	srv := http.Server{Handler: http.RedirectHandler("/elsewhere", http.StatusFound)}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	resp, err := Client(time.Second, 0).Get("http://" + ln.Addr().String() + "/")
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
}
