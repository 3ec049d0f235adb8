// Package routertest starts a real router for other packages' tests.
package routertest
