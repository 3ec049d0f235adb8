// Package cli is what the commands share around their run function: signal
// handling, the error line and the exit code.
package cli
