// Package backend is what the gateway's hooks (package hook) and the
// router's webhooks (package webhook) share to reach the application's
// backend over HTTP: the check of its URL, a client that follows no
// redirect, and errors that never carry the URL (it may hold a
// credential: user:password@, or a token in its query).
package backend

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// CheckURL says what is wrong with raw as a backend's URL, if anything,
// naming what (the flag or package); the error names the URL's scheme
// and host only.
func CheckURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: URL is not a URL: %v", what, Err(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: URL %s://%s/...: want an http or https URL with a host", what, u.Scheme, u.Host)
	}
	return nil
}

// Client returns an HTTP client whose requests end after timeout and
// that keeps up to conns connections (0: Go's default). It follows no
// redirect: a 3xx is an answer like any other not 2xx (a moved backend
// is a configuration to fix, and what was sent was meant for this URL).
func Client(timeout time.Duration, conns int) *http.Client {
	c := &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if conns > 0 {
		c.Transport = &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
			IdleConnTimeout: 90 * time.Second,
		}
	}
	return c
}

// Err is err without the URL a *url.Error names.
func Err(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
