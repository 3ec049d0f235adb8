// Package e2e tests the real binaries (bin/, built by make build) end to
// end: the smoke test of router, gateway, msggen and floodtest as
// processes, and the demo page in headless Chromium.
package e2e
