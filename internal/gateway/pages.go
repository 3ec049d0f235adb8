package gateway

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"sync"

	"github.com/valyala/fasthttp"

	cometjs "github.com/cometgw/comet/clients/js"
)

//go:embed demo.html
var demoPage []byte

// libraryGzip is the client library gzipped, once, on its first request
// (about a third of its size): a gateway process nobody asks for it
// (most of a -procs fleet) never does the work.
var libraryGzip = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(cometjs.Source)
	w.Close()
	return b.Bytes()
})

// servePage answers the gateway's own pages: the index (its usage), the
// demo page and the client library it imports.
func servePage(ctx *fasthttp.RequestCtx, rt route) {
	h := &ctx.Response.Header
	switch rt {
	case routeDemo:
		ctx.SetContentType("text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		ctx.SetBody(demoPage)
	case routeLibrary:
		// Any page may import it (a module script is a CORS request);
		// it carries no credentials.
		ctx.SetContentType("text/javascript; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Vary", "Accept-Encoding")
		if ctx.Request.Header.HasAcceptEncoding("gzip") {
			h.Set("Content-Encoding", "gzip")
			ctx.SetBody(libraryGzip())
		} else {
			ctx.SetBody(cometjs.Source)
		}
	default:
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(indexText)
	}
}
