// Package embeddednats runs an in-process nats-server as one unit: started
// with its listen address, waited on until it accepts connections, logging
// through zap, and shut down cleanly.
package embeddednats
