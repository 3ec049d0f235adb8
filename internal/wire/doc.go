// Package wire is the binary, batched format of the NATS messages exchanged
// by gateways, the router and senders. docs/PROTOCOL.md is its
// specification; this package is the reference implementation.
//
// A frame is one NATS message payload:
//
//	frame  = version:u8 kind:u8 header records...
//	header = (KindUp only) gateway:str instance:uvarint
//
// and then records until the end of the payload, each an op byte followed by
// the op's fields. Integers are LEB128 varints (uvarint, or zig-zag varint
// for ids); byte strings are a uvarint length followed by the bytes.
//
// Encoding appends to a caller-owned []byte and never allocates on its own;
// decoding walks the payload in place: Record.Msg aliases the frame.
//
// Files by direction: wire.go the frame's kinds, ops, limits and the
// decoded Record; up.go what a gateway sends its routers; down.go what a
// router sends a gateway; send.go what senders send a router and its
// acks; decode.go the one Decoder; subject.go the NATS subjects,
// partitions and watch lists.
package wire
