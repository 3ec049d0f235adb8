package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

func init() {
	// The streams' bodies are text like text/plain's.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.PlainBodyDecoder)
}

// TestOpenAPI: every endpoint of docs/openapi.yaml answers a live router
// and gateway as the document says (kin-openapi validates each request
// and response: status, content type, body schema), including errors.
func TestOpenAPI(t *testing.T) {
	bin := binDir(t)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join(repo(t), "docs/openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("docs/openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	natsAddr, routerAdmin, gwAddr := freePort(t), freePort(t), freePort(t)
	start(t, bin+"/router", "-nats-addr", natsAddr, "-admin", routerAdmin, "-topic-history", "10", "-log-level", "warn")
	start(t, bin+"/gateway", "-addr", gwAddr, "-admin", "off", "-nats", "nats://"+natsAddr, "-log-level", "warn")
	waitRouter(t, routerAdmin, "the gateway known", func(st routerStats) bool { return st.Gateways == 1 })
	doc.Servers = openapi3.Servers{{URL: "http://" + routerAdmin}, {URL: "http://" + gwAddr}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	// A stream held while the router's endpoints are tried, so that
	// sends, kicks and presence have someone.
	hold, err := http.Get("http://" + gwAddr + "/sse/5?topics=lobby")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Body.Close()
	waitRouter(t, routerAdmin, "the stream logged in", func(st routerStats) bool { return st.Conns == 1 })

	r, g := "http://"+routerAdmin, "http://"+gwAddr
	for _, c := range []struct {
		method, url, body string
		status            int
		stream            bool // read only the first bytes
	}{
		{"GET", r + "/stats", "", 200, false},
		{"GET", r + "/ids/5", "", 200, false},
		{"GET", r + "/ids/x", "", 400, false},
		{"POST", r + "/send/5", "hello", 200, false},
		{"POST", r + "/send/6", "to nobody", 200, false},
		{"POST", r + "/publish/lobby", "hi room", 200, false},
		{"POST", r + "/broadcast", "all", 200, false},
		{"PUT", r + "/subscriptions/5/news", "", 200, false},
		{"GET", r + "/subscriptions/5", "", 200, false},
		{"DELETE", r + "/subscriptions/5/news", "", 200, false},
		{"GET", r + "/topics/lobby", "", 200, false},
		{"GET", r + "/topics/lobby/history", "", 200, false},
		{"GET", r + "/topics/lobby/history?limit=0", "", 400, false},
		{"GET", g + "/test/7?rewind=5", "", 400, false},
		{"GET", r + "/healthz", "", 200, false},
		{"GET", r + "/readyz", "", 200, false},
		{"GET", r + "/metrics", "", 200, false},
		{"GET", g + "/test/7", "", 200, true},
		{"GET", g + "/test/x", "", 400, false},
		{"GET", g + "/sse/7", "", 200, true},
		{"GET", g + "/poll/7?timeout=1ms", "", 200, false},
		{"GET", g + "/poll/x", "", 400, false},
		{"GET", g + "/demo", "", 200, false},
		{"GET", g + "/comet.js", "", 200, false},
		{"POST", r + "/kick/5", "", 200, false},
	} {
		t.Run(c.method+" "+strings.TrimPrefix(strings.TrimPrefix(c.url, r), g), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			req, err := http.NewRequestWithContext(ctx, c.method, c.url, body)
			if err != nil {
				t.Fatal(err)
			}
			if c.body != "" {
				req.Header.Set("Content-Type", "application/octet-stream")
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("not in docs/openapi.yaml: %v", err)
			}
			opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
			if c.status < 400 {
				if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
					t.Fatalf("request: %v", err)
				}
				if c.body != "" {
					req.Body = io.NopCloser(strings.NewReader(c.body)) // read by the validation
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got []byte
			if c.stream {
				buf := make([]byte, 256)
				n, _ := resp.Body.Read(buf)
				got = buf[:n]
			} else {
				got, _ = io.ReadAll(resp.Body)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, got)
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
				Body: io.NopCloser(bytes.NewReader(got)), Options: opts}
			if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
				t.Fatalf("response %d %q does not match docs/openapi.yaml: %v", resp.StatusCode, got, err)
			}
		})
	}
}
