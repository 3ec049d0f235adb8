// Package cometjs holds the JavaScript client library (comet.js, an ES
// module) for the gateway to serve at /comet.js, so a page can import the
// library from the gateway it talks to. The library's guide is README.md
// beside it; its tests are npm test here.
package cometjs

import _ "embed"

// Source is comet.js as written (readable; the gateway serves it with a
// gzip encoding to clients that take one).
//
//go:embed comet.js
var Source []byte
