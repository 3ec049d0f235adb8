package gateway

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

//go:embed demo.html
var demoPage []byte

func (g *Gateway) handleDemo(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(demoPage)
}
