package chunkparse

import (
	"errors"
	"fmt"
)

// Parser errors.
var (
	ErrChunkSize     = errors.New("chunkparse: bad chunk size line")
	ErrChunkTooLarge = errors.New("chunkparse: chunk larger than the limit")
	ErrChunkCRLF     = errors.New("chunkparse: chunk data not followed by CRLF")
	ErrAfterEnd      = errors.New("chunkparse: data after the last chunk")
	ErrTrailer       = errors.New("chunkparse: trailer section too long")
)

const (
	stSize = iota
	stExt
	stSizeLF
	stData
	stDataCR
	stDataLF
	stTrailerStart
	stTrailerLine
	stTrailerLF
	stTrailerEndLF
	stDone
)

// Parser decodes an HTTP/1.1 chunked body incrementally: bytes go in as
// they arrive from the socket, whole chunks come out. It keeps the part of
// a chunk split across reads (bounded by MaxChunk) and nothing else.
//
// It is 24 bytes, so that a client holding many streams (floodtest) can
// keep one per stream.
type Parser struct {
	// MaxChunk bounds a chunk's size. Default (0): 1 MiB.
	MaxChunk uint32
	size     uint32 // data bytes left in the current chunk
	state    uint8
	digits   uint8
	trailer  uint16  // bytes of the current extension or trailer line
	partial  *[]byte // a chunk split across reads; nil otherwise
}

// Done reports whether the last chunk and the trailer have been read.
func (p *Parser) Done() bool { return p.state == stDone }

// Feed consumes in and calls chunk with the data of every chunk completed
// by it (the slice is only valid during the call). It returns the first
// framing error, after which the parser must not be used.
func (p *Parser) Feed(in []byte, chunk func(data []byte)) error {
	max := uint64(p.MaxChunk)
	if max == 0 {
		max = 1 << 20
	}
	size := uint64(p.size)
	defer func() { p.size = uint32(size) }()
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch p.state {
		case stSize:
			var d byte
			switch {
			case c >= '0' && c <= '9':
				d = c - '0'
			case c >= 'a' && c <= 'f':
				d = c - 'a' + 10
			case c >= 'A' && c <= 'F':
				d = c - 'A' + 10
			case c == ';' && p.digits > 0:
				p.state = stExt
				continue
			case c == '\r' && p.digits > 0:
				p.state = stSizeLF
				continue
			default:
				return fmt.Errorf("%w: unexpected byte %q", ErrChunkSize, c)
			}
			if p.digits >= 16 {
				return fmt.Errorf("%w: size too long", ErrChunkSize)
			}
			p.digits++
			size = size<<4 | uint64(d)
			if size > max {
				return fmt.Errorf("%w: %d > %d", ErrChunkTooLarge, size, max)
			}
		case stExt:
			// Chunk extensions are skipped, bounded like a trailer line.
			p.trailer++
			if p.trailer > 4096 {
				return fmt.Errorf("%w: chunk extension too long", ErrChunkSize)
			}
			switch c {
			case '\r':
				p.state = stSizeLF
			case '\n':
				return fmt.Errorf("%w: bare LF", ErrChunkSize)
			}
		case stSizeLF:
			if c != '\n' {
				return fmt.Errorf("%w: CR not followed by LF", ErrChunkSize)
			}
			p.digits, p.trailer = 0, 0
			if size == 0 {
				p.state = stTrailerStart
			} else {
				p.state = stData
			}
		case stData:
			n := uint64(len(in) - i)
			if n > size {
				n = size
			}
			data := in[i : i+int(n)]
			size -= n
			i += int(n) - 1
			if size == 0 {
				if p.partial != nil {
					whole := append(*p.partial, data...)
					p.partial = nil
					chunk(whole)
				} else {
					chunk(data)
				}
				p.state = stDataCR
			} else {
				if p.partial == nil {
					b := make([]byte, 0, n+size)
					p.partial = &b
				}
				*p.partial = append(*p.partial, data...)
			}
		case stDataCR:
			if c != '\r' {
				return ErrChunkCRLF
			}
			p.state = stDataLF
		case stDataLF:
			if c != '\n' {
				return ErrChunkCRLF
			}
			p.state = stSize
		case stTrailerStart:
			switch c {
			case '\r':
				p.state = stTrailerEndLF
			case '\n':
				return fmt.Errorf("%w: bare LF", ErrTrailer)
			default:
				p.state = stTrailerLine
			}
		case stTrailerLine:
			p.trailer++
			if p.trailer > 8192 {
				return ErrTrailer
			}
			switch c {
			case '\r':
				p.state = stTrailerLF
			case '\n':
				return fmt.Errorf("%w: bare LF", ErrTrailer)
			}
		case stTrailerLF:
			if c != '\n' {
				return fmt.Errorf("%w: CR not followed by LF", ErrTrailer)
			}
			p.state = stTrailerStart
		case stTrailerEndLF:
			if c != '\n' {
				return fmt.Errorf("%w: CR not followed by LF", ErrTrailer)
			}
			p.state = stDone
		case stDone:
			return ErrAfterEnd
		}
	}
	return nil
}
