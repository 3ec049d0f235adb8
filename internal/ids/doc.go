// Package ids parses client ids: signed 64-bit integers written in decimal,
// as they appear in URLs (/test/123) and on command lines.
package ids
