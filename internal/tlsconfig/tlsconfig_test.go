package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func genDev(t *testing.T) DevFiles {
	t.Helper()
	f, err := GenerateDev(t.TempDir(), DevOptions{Hosts: []string{"pacs.local", "10.0.0.5"}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// httpsServer serves "ok <client CN>" with an http.Server over TLS with
// cfg (httptest would add its own certificate); it returns the base URL.
func httpsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	srv := &http.Server{TLSConfig: cfg, ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := "-"
		if len(r.TLS.VerifiedChains) > 0 {
			cn = r.TLS.VerifiedChains[0][0].Subject.CommonName
		}
		io.WriteString(w, "ok "+cn)
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + l.Addr().String()
}

func get(t *testing.T, url string, cfg *tls.Config) (string, error) {
	t.Helper()
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	defer cl.CloseIdleConnections()
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestDevCertificates(t *testing.T) {
	f := genDev(t)
	pool, err := LoadCertPool(f.CACert)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(path string) *x509.Certificate {
		c, err := tls.LoadX509KeyPair(path, strings.Replace(path, ".pem", "-key.pem", 1))
		if err != nil {
			t.Fatal(err)
		}
		x, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	srv := leaf(f.ServerCert)
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "pacs.local", "10.0.0.5"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{DNSName: "example.org", Roots: pool}); err == nil {
		t.Error("server certificate verifies for example.org")
	}
	cli := leaf(f.ClientCert)
	if cli.Subject.CommonName != "radflow-dev-client" {
		t.Errorf("client CN %q", cli.Subject.CommonName)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate verifies for server auth")
	}
	for _, k := range []string{f.CAKey, f.ServerKey, f.ClientKey} {
		fi, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(k), fi.Mode().Perm())
		}
	}
	if _, err := GenerateDev(filepath.Dir(f.CACert), DevOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("second GenerateDev: %v, want ErrExists", err)
	}
	if _, err := GenerateDev(filepath.Dir(f.CACert), DevOptions{Overwrite: true}); err != nil {
		t.Errorf("GenerateDev with Overwrite: %v", err)
	}
}

func TestHTTPSServer(t *testing.T) {
	f := genDev(t)
	cfg, err := Server(ServerOptions{CertFile: f.ServerCert, KeyFile: f.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	url := httpsServer(t, cfg)
	cli, err := Client(ClientOptions{CAFile: f.CACert})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := get(t, url, cli); err != nil || body != "ok -" {
		t.Fatalf("TLS client: %q, %v", body, err)
	}
	// TLS 1.2 exactly is accepted.
	tls12 := cli.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	if body, err := get(t, url, tls12); err != nil || body != "ok -" {
		t.Fatalf("TLS 1.2 client: %q, %v", body, err)
	}
	// TLS 1.1 and 1.0 are refused.
	for _, v := range []uint16{tls.VersionTLS11, tls.VersionTLS10} {
		old := &tls.Config{RootCAs: cli.RootCAs, MinVersion: v, MaxVersion: v}
		if _, err := get(t, url, old); err == nil || !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("TLS version %x client: %v, want a protocol version alert", v, err)
		}
	}
	// A TLS 1.2 client offering only CBC suites is refused.
	cbc := &tls.Config{RootCAs: cli.RootCAs, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}
	if _, err := get(t, url, cbc); err == nil {
		t.Error("a CBC-only TLS 1.2 client was accepted")
	}
	// Plain HTTP to the TLS port gets no page.
	if resp, err := http.Get("http://" + strings.TrimPrefix(url, "https://")); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP to the HTTPS port answered 200")
		}
	}
}

func TestHTTPSMutualTLS(t *testing.T) {
	f := genDev(t)
	cfg, err := Server(ServerOptions{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CACert, ClientAuth: ClientAuthRequire})
	if err != nil {
		t.Fatal(err)
	}
	url := httpsServer(t, cfg)
	withCert, err := Client(ClientOptions{CAFile: f.CACert, CertFile: f.ClientCert, KeyFile: f.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	if body, err := get(t, url, withCert); err != nil || body != "ok radflow-dev-client" {
		t.Fatalf("client with certificate: %q, %v", body, err)
	}
	noCert, _ := Client(ClientOptions{CAFile: f.CACert})
	if body, err := get(t, url, noCert); err == nil {
		t.Fatalf("client without certificate got %q", body)
	}
	// A certificate from another CA is refused.
	other := genDev(t)
	foreign, _ := Client(ClientOptions{CAFile: f.CACert, CertFile: other.ClientCert, KeyFile: other.ClientKey})
	if body, err := get(t, url, foreign); err == nil {
		t.Fatalf("client with a foreign certificate got %q", body)
	}

	// Optional: no certificate is fine, a foreign one is not.
	cfg, err = Server(ServerOptions{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CACert, ClientAuth: ClientAuthOptional})
	if err != nil {
		t.Fatal(err)
	}
	optURL := httpsServer(t, cfg)
	if body, err := get(t, optURL, noCert); err != nil || body != "ok -" {
		t.Fatalf("optional, no certificate: %q, %v", body, err)
	}
	if body, err := get(t, optURL, foreign); err == nil {
		t.Fatalf("optional, foreign certificate got %q", body)
	}
}

func TestServerOptionErrors(t *testing.T) {
	f := genDev(t)
	for name, o := range map[string]ServerOptions{
		"no key":         {CertFile: f.ServerCert},
		"missing file":   {CertFile: f.ServerCert + ".x", KeyFile: f.ServerKey},
		"key mismatch":   {CertFile: f.ServerCert, KeyFile: f.ClientKey},
		"require, no CA": {CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientAuth: ClientAuthRequire},
		"CA not PEM":     {CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientAuth: ClientAuthRequire, ClientCAFile: f.CAKey},
		"unknown policy": {CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientAuth: "sometimes"},
	} {
		if _, err := Server(o); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	if _, err := Client(ClientOptions{CertFile: f.ClientCert}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("client cert without key: %v", err)
	}
}

// TestCertificateReload: replacing the server certificate files switches
// the certificate served without a restart.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	f, err := GenerateDev(dir, DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Server(ServerOptions{CertFile: f.ServerCert, KeyFile: f.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	serial := func() string {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	// New files with a later modification time.
	if _, err := GenerateDev(dir, DevOptions{Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(f.ServerCert, later, later)
	os.Chtimes(f.ServerKey, later, later)
	var got string
	for i := 0; i < 30; i++ { // the files are checked at most once a second
		if got = serial(); got != first {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got == first {
		t.Fatal("the renewed certificate was not served")
	}
}
