// Package nginxproxy runs deploy/nginx/comet.conf, the TLS reverse proxy
// the README's production setup uses, in front of a gateway on loopback:
// the e2e tests drive every kind of client through it and
// bench/tlscost measures what TLS costs per connection with it. The
// file is used as it is; only its certificate paths, its listen line and
// its gateway address are put in (and Write fails if one of them is not
// where the file had it, so the file and its tests cannot drift apart).
package nginxproxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is where the proxy runs.
type Config struct {
	// Template is deploy/nginx/comet.conf.
	Template string
	// Dir holds the generated files, nginx's pid, logs and temp files.
	Dir string
	// Gateway is the gateway's host:port.
	Gateway string
	// TLS is the TLS listen address; Plain, if set, a plain HTTP one in
	// the same server block (for side-by-side measurements).
	TLS, Plain string
	// Key is the certificate's key type: "ecdsa" (P-256, the default) or
	// "rsa" (2048 bits).
	Key string
	// Workers is nginx's worker processes. Default 1.
	Workers int
}

// Files are what Write made.
type Files struct {
	Conf string // nginx -c
	CA   string // the CA certificate clients trust (PEM)
	// CAPool is the same, for Go clients.
	CAPool *x509.CertPool
}

// Write makes a CA and a server certificate for 127.0.0.1 and localhost,
// and nginx's configuration: a main file around the template.
func Write(cfg Config) (Files, error) {
	var f Files
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	tmpl, err := os.ReadFile(cfg.Template)
	if err != nil {
		return f, err
	}
	certPEM, keyPEM, caPEM, pool, err := certificates(cfg.Key)
	if err != nil {
		return f, err
	}
	put := func(name string, b []byte) (string, error) {
		p := filepath.Join(cfg.Dir, name)
		return p, os.WriteFile(p, b, 0o600)
	}
	var cert, key string
	if cert, err = put("fullchain.pem", certPEM); err != nil {
		return f, err
	}
	if key, err = put("privkey.pem", keyPEM); err != nil {
		return f, err
	}
	if f.CA, err = put("ca.pem", caPEM); err != nil {
		return f, err
	}
	f.CAPool = pool
	listen := "listen " + cfg.TLS + " ssl http2;"
	if cfg.Plain != "" {
		listen += "\n    listen " + cfg.Plain + ";"
	}
	site := string(tmpl)
	for _, r := range [][2]string{
		{"listen 443 ssl http2;", listen},
		{"/etc/comet/tls/fullchain.pem", cert},
		{"/etc/comet/tls/privkey.pem", key},
		{"server 127.0.0.1:8000;", "server " + cfg.Gateway + ";"},
		{"/var/log/nginx/comet.access.log", filepath.Join(cfg.Dir, "access.log")},
	} {
		if !strings.Contains(site, r[0]) {
			return f, fmt.Errorf("nginxproxy: %s no longer has %q", cfg.Template, r[0])
		}
		site = strings.Replace(site, r[0], r[1], 1)
	}
	sitePath, err := put("comet.conf", []byte(site))
	if err != nil {
		return f, err
	}
	// A session ticket key of its own, so that sessions outlive one nginx
	// process (bench/tlscost restarts it between phases).
	ticketKey := make([]byte, 80)
	rand.Read(ticketKey)
	keyPath, err := put("ticket.key", ticketKey)
	if err != nil {
		return f, err
	}
	d := cfg.Dir
	main := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %d;
worker_rlimit_nofile 20000;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events {
    worker_connections 19500;
}
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    ssl_session_ticket_key %[4]s;
    include %[3]s;
}
`, cfg.Workers, d, sitePath, keyPath)
	f.Conf, err = put("nginx.conf", []byte(main))
	return f, err
}

// certificates makes a CA and a server certificate it signs.
func certificates(kind string) (certPEM, keyPEM, caPEM []byte, pool *x509.CertPool, err error) {
	newKey := func() (any, any, error) {
		if kind == "rsa" {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return nil, nil, err
			}
			return k, &k.PublicKey, nil
		}
		if kind != "" && kind != "ecdsa" {
			return nil, nil, fmt.Errorf("nginxproxy: key type %q: want ecdsa or rsa", kind)
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		return k, &k.PublicKey, nil
	}
	caKey, caPub, err := newKey()
	if err != nil {
		return
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "comet test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caPub, caKey)
	if err != nil {
		return
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, pub, err := newKey()
	if err != nil {
		return
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, pub, caKey)
	if err != nil {
		return
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool, nil
}
