package chunked

import (
	"html"
	"strings"
	"testing"
)

func TestAppendChunk(t *testing.T) {
	tests := []struct {
		parts []string
		want  string
	}{
		{[]string{"hello"}, "5\r\nhello\r\n"},
		{[]string{"a", "bc"}, "3\r\nabc\r\n"},
		{[]string{strings.Repeat("x", 26)}, "1a\r\n" + strings.Repeat("x", 26) + "\r\n"},
		{nil, ""},
		{[]string{"", ""}, ""},
	}
	for _, tt := range tests {
		var parts [][]byte
		for _, p := range tt.parts {
			parts = append(parts, []byte(p))
		}
		if got := string(AppendChunk(nil, parts...)); got != tt.want {
			t.Errorf("AppendChunk(%q) = %q, want %q", tt.parts, got, tt.want)
		}
	}
}

func TestHTMLMessage(t *testing.T) {
	tests := []struct {
		n    uint64
		msg  string
		want string
	}{
		{1, "Hello World", "Recvd msg #1: 'Hello World'<br/>\n"},
		{42, "<script>alert('x')</script> & \"q\"", "Recvd msg #42: '&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;'<br/>\n"},
		{3, "", "Recvd msg #3: ''<br/>\n"},
		{4, "héllo\x00", "Recvd msg #4: 'héllo\x00'<br/>\n"},
	}
	for _, tt := range tests {
		esc := AppendHTMLEscaped(nil, []byte(tt.msg))
		if string(esc) != html.EscapeString(tt.msg) {
			t.Errorf("escape(%q) = %q, html.EscapeString says %q", tt.msg, esc, html.EscapeString(tt.msg))
		}
		if got := string(AppendHTMLMessage(nil, tt.n, esc)); got != tt.want {
			t.Errorf("message = %q, want %q", got, tt.want)
		}
	}
}
