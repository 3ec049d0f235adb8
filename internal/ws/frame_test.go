package ws

import (
	"bytes"
	"errors"
	"io"
	"testing"

	gobwas "github.com/gobwas/ws"
)

// clientFrame makes a masked client frame.
func clientFrame(b0 byte, payload []byte, mask [4]byte) []byte {
	return AppendClientFrame(nil, b0, payload, mask)
}

func TestParseFrame(t *testing.T) {
	long := bytes.Repeat([]byte("abcdefghij"), 7000) // 70,000: a 64-bit length
	for _, payload := range [][]byte{nil, []byte("hi"), bytes.Repeat([]byte("x"), 126), long} {
		f := clientFrame(0x81, payload, [4]byte{9, 8, 7, 6})
		for cut := 0; cut < len(f); cut += 1 + len(f)/50 {
			if _, n, err := ParseFrame(f[:cut], 1<<20); n != 0 || err != nil {
				t.Fatalf("%d of %d bytes: n %d err %v", cut, len(f), n, err)
			}
		}
		got, n, err := ParseFrame(append(f, 0x81), 1<<20)
		if err != nil || n != len(f) || !got.Fin || got.Op != OpText || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("%d bytes: %+v n %d err %v", len(payload), got, n, err)
		}
	}
	if _, _, err := ParseFrame(clientFrame(0x81, long, [4]byte{}), 1000); err == nil || err.Code != CloseTooBig {
		t.Fatalf("too big: %v", err)
	}
}

func TestClose(t *testing.T) {
	f := AppendClose(nil, 4000, string(bytes.Repeat([]byte("é"), 100)))
	if f[1] != 124 || len(f) != 2+124 { // 2 of code, 61 é (122 bytes): the 62nd would pass 125
		t.Fatalf("close frame of %d bytes, length byte %d", len(f), f[1])
	}
	code, err := ParseClose(f[2:])
	if err != nil || code != 4000 {
		t.Fatalf("%d %v", code, err)
	}
	for _, tt := range []struct {
		p    []byte
		code uint16
	}{{nil, 0}, {[]byte{3}, CloseProtocol}, {[]byte{0x03, 0xE8}, 0}, {[]byte{0x03, 0xEE}, CloseProtocol}, {[]byte{0x0B, 0xB8}, 0}, {[]byte{0x03, 0xE8, 0xC3}, CloseInvalidData}} {
		_, err := ParseClose(tt.p)
		if (err == nil) != (tt.code == 0) || err != nil && err.Code != tt.code {
			t.Errorf("%x: %v", tt.p, err)
		}
	}
}

// FuzzParseFrame checks ParseFrame against gobwas/ws's reader on any
// input whose header gobwas reads whole: the same frames accepted (with
// the same payload), the same refused, the same incomplete.
func FuzzParseFrame(f *testing.F) {
	f.Add(clientFrame(0x81, []byte("hello"), [4]byte{1, 2, 3, 4}))
	f.Add(clientFrame(0x01, bytes.Repeat([]byte("x"), 200), [4]byte{5, 6, 7, 8}))
	f.Add(clientFrame(0x89, []byte("ping"), [4]byte{}))
	f.Add(clientFrame(0x88, []byte{3, 232}, [4]byte{1, 1, 1, 1}))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0xC1, 0x80, 0, 0, 0, 0})
	f.Add([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		mine := append([]byte(nil), p...)
		got, n, err := ParseFrame(mine, 1<<30)

		r := bytes.NewReader(p)
		h, herr := gobwas.ReadHeader(r)
		if errors.Is(herr, io.EOF) || errors.Is(herr, io.ErrUnexpectedEOF) {
			return // gobwas has not the whole header: ours may refuse sooner
		}
		if herr == nil {
			// Fragmentation is the message's business (Socket.data):
			// checked here as a frame in the state it fits.
			st := gobwas.StateServerSide
			if h.OpCode == gobwas.OpContinuation {
				st |= gobwas.StateFragmented
			}
			herr = gobwas.CheckHeader(h, st)
		}
		if herr != nil {
			if err == nil {
				t.Fatalf("%x: gobwas refuses (%v), ParseFrame takes %+v n %d", p, herr, got, n)
			}
			return
		}
		if err != nil {
			if err.Code == CloseTooBig && h.Length > 1<<30 {
				return
			}
			t.Fatalf("%x: ParseFrame refuses (%v), gobwas takes %+v", p, err, h)
		}
		hdr := len(p) - r.Len()
		if int64(r.Len()) < h.Length {
			if n != 0 {
				t.Fatalf("%x: incomplete for gobwas, ParseFrame took %d", p, n)
			}
			return
		}
		payload := append([]byte(nil), p[hdr:hdr+int(h.Length)]...)
		gobwas.Cipher(payload, h.Mask, 0)
		if n != hdr+int(h.Length) || got.Fin != h.Fin || got.Op != byte(h.OpCode) || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("%x: ParseFrame %+v n %d; gobwas %+v payload %x", p, got, n, h, payload)
		}
	})
}

// FuzzParseRequest: any message gets a request or a one-line error,
// never a panic.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"op":"publish","topic":"a","data":"b","ref":1}`, `{"op":"send","id":-1,"data":""}`, `{"op":"join","topics":["x"]}`, `{"op":"auth","token":"a.b.c","ref":2}`, `{"op":"auth"}`, `[]`, `{"op":1}`, `{} {}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := ParseRequest(msg)
		if err == nil && r == nil {
			t.Fatal("no request and no error")
		}
		if err != nil && bytes.ContainsAny([]byte(err.Error()), "\n") {
			t.Fatalf("error of several lines: %q", err)
		}
		if f := AppendError(nil, 0, "x", "y"); f[0] != 0x81 {
			t.Fatal(f)
		}
	})
}
