package auth

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkVerifyHS256: the cost of checking one client token (the garbage
// it leaves is what the comet-auth bench-memory row pays over comet).
func BenchmarkVerifyHS256(b *testing.B) {
	dir := b.TempDir()
	secret := []byte("0123456789abcdef0123456789abcdef")
	p := filepath.Join(dir, "s")
	os.WriteFile(p, secret, 0o600)
	v, err := Load(Config{SecretFile: p})
	if err != nil {
		b.Fatal(err)
	}
	tok := string(AppendHS256(nil, secret, 12345, time.Now().Add(time.Hour)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
