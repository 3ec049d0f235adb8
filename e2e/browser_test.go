package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
)

// chromium finds a Chromium to drive: $COMET_CHROMIUM, or chromium on the
// PATH. Without one the test is skipped, unless COMET_REQUIRE_BROWSER=1
// (CI installs Debian's chromium and sets it, so there it always runs).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COMET_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("COMET_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium found and COMET_REQUIRE_BROWSER=1 (apt-get install chromium, or set COMET_CHROMIUM)")
	}
	t.Skip("no chromium on this machine (apt-get install chromium); set COMET_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// browserContext starts a headless Chromium for the test (stopped when
// it ends) and returns its context, bounded to 60 s.
func browserContext(t *testing.T, browser string) context.Context {
	// Not t.TempDir: Chromium's helper processes may still write to it
	// for a moment after the browser is stopped, and the test would fail
	// removing it.
	profile, err := os.MkdirTemp("", "comet-chromium")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelT()
		cancel()
		cancelAlloc()
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return ctx
}

// TestDemoPageInChromium opens the gateway's /demo page in headless
// Chromium: its EventSource shows every message as it arrives, and when
// the gateway restarts, the browser reconnects with Last-Event-ID and
// shows the messages sent while it was gone, each once.
func TestDemoPageInChromium(t *testing.T) {
	browser := chromium(t)
	bin := binDir(t)
	p := startPair(t, bin, nil, []string{"-name", "browser", "-sse-retry", "300ms"})
	routerAdmin, gwAddr := p.routerAdmin, p.gwAddr

	ctx := browserContext(t, browser)
	var state string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+gwAddr+"/demo?id=77"),
		chromedp.WaitVisible("#state.open", chromedp.ByQuery),
		chromedp.Text("#state", &state, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("demo page: %v", err)
	}
	// The page's EventSource is open once its response head arrives; its
	// login reaches the router a moment later. Messages sent before that
	// are not for this client (it asked to start from now).
	waitRouter(t, routerAdmin, "the page's stream logged in", func(st routerStats) bool { return st.Conns == 1 })
	send := func(msg string) {
		t.Helper()
		if out, err := runCmd(t, bin+"/router", "send", "-admin", routerAdmin, "77", msg); err != nil {
			t.Fatalf("router send: %v\n%s", err, out)
		}
	}
	items := func() []string {
		var got []string
		if err := chromedp.Run(ctx, chromedp.Evaluate(
			`Array.from(document.querySelectorAll("#messages li")).map(li => li.textContent)`, &got)); err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return got
	}
	var want []string
	for i := 1; i <= 3; i++ {
		m := fmt.Sprintf("hello <b>%d</b> & 'more'", i)
		want = append(want, m)
		send(m)
	}
	waitFor(t, "3 messages on the page", func() bool { return len(items()) == 3 })

	// The gateway restarts; messages sent meanwhile are kept by the router
	// and reach the page when the browser resumes from its Last-Event-ID.
	p.gw.stop(t)
	for i := 4; i <= 6; i++ {
		m := fmt.Sprintf("while away %d", i)
		want = append(want, m)
		send(m)
	}
	start(t, bin+"/gateway", p.gwArgs...)
	waitFor(t, "6 messages on the page", func() bool { return len(items()) >= 6 })
	time.Sleep(300 * time.Millisecond) // a duplicate would show now
	got := items()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("page shows %q, want %q", got, want)
	}
	t.Logf("page state %q; shows %d messages in order, each once", state, len(got))
}

// TestDemoPageWithTokenInChromium: with tokens on, Chromium's EventSource
// on the demo page opens its id with the token in ?token= and shows what
// is sent to it; without a token the gateway refuses it (401) and the
// page shows nothing.
func TestDemoPageWithTokenInChromium(t *testing.T) {
	browser := chromium(t)
	s := startSecured(t)
	ctx := browserContext(t, browser)
	tok := s.hs(t, jwt.MapClaims{"sub": "21", "exp": exp(time.Hour)})
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+s.gwAddr+"/demo?id=21&token="+tok),
		chromedp.WaitVisible("#state.open", chromedp.ByQuery),
	); err != nil {
		t.Fatalf("demo page with a token: %v", err)
	}
	waitFor(t, "the page's stream logged in", func() bool {
		var st struct{ Conns int }
		s.admin("http://"+s.routerAdmin+"/stats", &st)
		return st.Conns == 1
	})
	if out, err := runCmd(t, s.bin+"/router", "send", "-admin", s.routerAdmin, "-admin-token-file", s.files["admin"], "21", "for the page with a token"); err != nil {
		t.Fatalf("router send: %v\n%s", err, out)
	}
	var got []string
	waitFor(t, "the message on the page", func() bool {
		chromedp.Run(ctx, chromedp.Evaluate(`Array.from(document.querySelectorAll("#messages li")).map(li => li.textContent)`, &got))
		return len(got) == 1 && got[0] == "for the page with a token"
	})

	// Without a token: refused, counted, nothing shown.
	var state string
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+s.gwAddr+"/demo?id=22"),
		chromedp.WaitVisible("#state.closed", chromedp.ByQuery),
		chromedp.Text("#state", &state, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("demo page without a token: %v", err)
	}
	var st struct {
		Refused map[string]uint64 `json:"refused"`
	}
	s.admin("http://"+s.gwAdmin+"/stats", &st)
	if st.Refused["no_token"] < 1 {
		t.Fatalf("no refusal counted: %v", st.Refused)
	}
}

// openPages opens each page of the gateway at gwAddr in its own tab of
// one browser and waits until each shows its stream open.
func openPages(t *testing.T, browser, gwAddr string, pages ...string) []context.Context {
	t.Helper()
	ctx := browserContext(t, browser)
	if err := chromedp.Run(ctx); err != nil { // the browser, which the tabs share
		t.Fatal(err)
	}
	var tabs []context.Context
	for _, page := range pages {
		tab, cancel := chromedp.NewContext(ctx)
		t.Cleanup(cancel)
		if err := chromedp.Run(tab, chromedp.Navigate("http://"+gwAddr+page), chromedp.WaitVisible("#state.open", chromedp.ByQuery)); err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		tabs = append(tabs, tab)
	}
	return tabs
}

// pageItems is the messages a demo page shows.
func pageItems(tab context.Context) []string {
	var got []string
	chromedp.Run(tab, chromedp.Evaluate(`Array.from(document.querySelectorAll("#messages li")).map(li => li.textContent)`, &got))
	return got
}

// TestChatRoomInChromium: two browser pages in one chat room
// (/demo?id=N&topics=lobby) both show what is published to it; a page
// not in the room does not.
func TestChatRoomInChromium(t *testing.T) {
	browser := chromium(t)
	bin := binDir(t)
	p := startPair(t, bin, nil, []string{"-name", "chat"})
	routerAdmin, gwAddr := p.routerAdmin, p.gwAddr
	tabs := openPages(t, browser, gwAddr, "/demo?id=1&topics=lobby", "/demo?id=2&topics=lobby", "/demo?id=3")
	waitRouter(t, routerAdmin, "three pages logged in", func(st routerStats) bool { return st.Conns == 3 })
	if out, err := runCmd(t, bin+"/router", "publish", "-admin", routerAdmin, "lobby", "hello, room"); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	for i, tab := range tabs[:2] {
		waitFor(t, fmt.Sprintf("the message on page %d", i+1), func() bool {
			got := pageItems(tab)
			return len(got) == 1 && got[0] == "hello, room"
		})
	}
	if got := pageItems(tabs[2]); len(got) != 0 {
		t.Fatalf("the page outside the room shows %q", got)
	}
}

// TestWebSocketChatInChromium: the Haskell chat in miniature, with
// clients nobody here wrote: two Chromium pages on WebSockets
// (/demo?ws=1&topics=lobby) and an npm ws client in the room. The npm
// client publishes; both pages show it. A page publishes through its
// form; the npm client gets it and the page shows the gateway's reply,
// which counts the three members' copies delivered.
func TestWebSocketChatInChromium(t *testing.T) {
	browser := chromium(t)
	bin := binDir(t)
	p := startPair(t, bin, nil, []string{"-name", "wschat"})
	routerAdmin, gwAddr := p.routerAdmin, p.gwAddr
	tabs := openPages(t, browser, gwAddr, "/demo?id=1&topics=lobby&ws=1", "/demo?id=2&topics=lobby&ws=1")
	waitRouter(t, routerAdmin, "two pages logged in", func(st routerStats) bool { return st.Conns == 2 })
	npm := nodeClient(t, "ws-client.mjs", "ws", nil, "ws://"+gwAddr+"/ws/3?topics=lobby", "2", "lobby")
	for i, tab := range tabs {
		waitFor(t, fmt.Sprintf("the npm client's message on page %d", i+1), func() bool {
			got := pageItems(tab)
			return len(got) == 1 && got[0] == "hello from ws"
		})
	}
	if err := chromedp.Run(tabs[0], chromedp.SendKeys("#say", "hello from Chromium", chromedp.ByQuery), chromedp.Click("#chat button", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the page's message on the other page", func() bool {
		got := pageItems(tabs[1])
		return len(got) == 2 && got[1] == "hello from Chromium"
	})
	var reply string
	waitFor(t, "the gateway's reply on the page", func() bool {
		chromedp.Run(tabs[0], chromedp.Text("#reply", &reply, chromedp.ByQuery))
		return strings.Contains(reply, `"delivered":3`)
	})
	lines := npm()
	var npmGot []string
	var npmReply string
	for _, l := range lines {
		var m struct {
			Data  string
			Reply map[string]any
		}
		json.Unmarshal(l, &m)
		if m.Reply != nil {
			npmReply = string(l)
		} else {
			npmGot = append(npmGot, m.Data)
		}
	}
	if strings.Join(npmGot, "|") != "hello from ws|hello from Chromium" || !strings.Contains(npmReply, `"delivered":3`) {
		t.Fatalf("npm ws client: %q, reply %s", npmGot, npmReply)
	}
	t.Logf("page reply %s; npm reply %s", reply, npmReply)
}

// TestLibraryInChromiumAcrossGatewayKill: the client library (clients/js,
// served by the gateway at /comet.js) in headless Chromium, one tab per
// transport (/demo?id=1&transport=websocket|sse|longpoll), while msggen
// sends id 1 300 numbered messages at 100/s and the gateway is killed
// (SIGKILL) and restarted a second later: every tab shows all 300, in
// order, each once.
func TestLibraryInChromiumAcrossGatewayKill(t *testing.T) {
	browser := chromium(t)
	transports := []string{"websocket", "sse", "longpoll"}
	var tabs []context.Context
	got, sent, _ := gatewayFaultUnder(t, []string{"-name", "library"}, len(transports), func(gwAddr string) func() []string {
		var pages []string
		for _, tr := range transports {
			pages = append(pages, "/demo?id=1&transport="+tr)
		}
		tabs = openPages(t, browser, gwAddr, pages...)
		return func() []string {
			var all []string
			for i, tab := range tabs {
				waitFor(t, transports[i]+" tab: 300 messages", func() bool { return len(pageItems(tab)) >= 300 })
			}
			time.Sleep(300 * time.Millisecond) // a duplicate would show now
			for i, tab := range tabs {
				for _, m := range pageItems(tab) {
					all = append(all, transports[i]+"|"+m)
				}
			}
			return all
		}
	}, 0)
	per := map[string][]string{}
	for _, l := range got {
		tr, m, _ := strings.Cut(l, "|")
		per[tr] = append(per[tr], m)
	}
	for _, tr := range transports {
		items := per[tr]
		if len(items) != 300 {
			t.Fatalf("%s tab shows %d messages, want 300", tr, len(items))
		}
		for i, m := range items {
			if want := fmt.Sprintf(" seq=%d", i+1); !strings.HasSuffix(m, want) {
				t.Fatalf("%s tab: item %d is %q, want one ending %q", tr, i+1, m, want)
			}
		}
	}
	var last []string
	for i, tab := range tabs {
		var s string
		chromedp.Run(tab, chromedp.Text("#transport", &s, chromedp.ByQuery))
		if s != "over "+transports[i] {
			t.Fatalf("tab %d is %q, want over %s", i, s, transports[i])
		}
		last = append(last, s)
	}
	t.Logf("300 of 300 in each tab (%s) across a gateway kill, in order, none twice; msggen: %s", strings.Join(last, ", "), sent)
}

// TestLibraryFallsBackInChromium: the demo page behind a proxy that
// refuses WebSocket upgrades (as some corporate proxies do): Chromium's
// WebSocket fails, the library falls back to SSE on its own and the page
// shows what is sent; it comes back over SSE (not trying the WebSocket
// again) when the gateway restarts, with what was sent meanwhile.
func TestLibraryFallsBackInChromium(t *testing.T) {
	browser := chromium(t)
	bin := binDir(t)
	p := startPair(t, bin, nil, []string{"-name", "fallback"})
	target, _ := url.Parse("http://" + p.gwAddr)
	var upgrades atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			upgrades.Add(1)
			http.Error(w, "WebSockets are not allowed here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tabs := openPages(t, browser, strings.TrimPrefix(srv.URL, "http://"), "/demo?id=61")
	waitRouter(t, p.routerAdmin, "the page logged in", func(st routerStats) bool { return st.Conns == 1 })
	var tr string
	chromedp.Run(tabs[0], chromedp.Text("#transport", &tr, chromedp.ByQuery))
	if tr != "over sse" || upgrades.Load() != 1 {
		t.Fatalf("the page is %q after %d upgrades refused, want over sse after 1", tr, upgrades.Load())
	}
	send := func(msg string) {
		t.Helper()
		if out, err := runCmd(t, bin+"/router", "send", "-admin", p.routerAdmin, "61", msg); err != nil {
			t.Fatalf("router send: %v\n%s", err, out)
		}
	}
	send("through the proxy")
	waitFor(t, "the message on the page", func() bool { return len(pageItems(tabs[0])) == 1 })
	p.gw.stop(t)
	send("while away")
	start(t, bin+"/gateway", p.gwArgs...)
	waitFor(t, "both on the page", func() bool { return len(pageItems(tabs[0])) == 2 })
	if got := pageItems(tabs[0]); got[0] != "through the proxy" || got[1] != "while away" || upgrades.Load() != 1 {
		t.Fatalf("page shows %q after %d upgrades", got, upgrades.Load())
	}
}
