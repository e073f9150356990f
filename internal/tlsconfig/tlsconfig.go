package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// ErrInvalidConfig reports missing or unusable TLS files or options.
var ErrInvalidConfig = errors.New("tlsconfig: invalid configuration")

// ClientAuth is the client certificate policy of a server.
type ClientAuth string

// Client certificate policies.
const (
	// ClientAuthNone asks for no client certificate.
	ClientAuthNone ClientAuth = "none"
	// ClientAuthOptional verifies a client certificate when one is sent
	// (against ClientCAFile) and accepts clients without one.
	ClientAuthOptional ClientAuth = "optional"
	// ClientAuthRequire refuses the handshake without a client
	// certificate that verifies against ClientCAFile (mutual TLS).
	ClientAuthRequire ClientAuth = "require"
)

// MinVersion is the lowest protocol version radflow speaks: TLS 1.2
// (RFC 9325 / BCP 195; DICOM PS3.15 B.9 BCP 195 TLS profiles).
const MinVersion = tls.VersionTLS12

// CipherSuites are the TLS 1.2 suites offered: ECDHE key exchange with
// AEAD ciphers only (forward secrecy; no CBC, RSA key transport, 3DES or
// RC4). TLS 1.3 suites are not configurable in Go and are all AEAD.
func CipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// ServerOptions configures a server (HTTPS or DICOM TLS) side.
type ServerOptions struct {
	// CertFile and KeyFile are the PEM certificate (chain, leaf first)
	// and private key. They are re-read when their modification time
	// changes (checked at most once a second), so renewed certificates
	// are used without a restart.
	CertFile, KeyFile string
	// ClientCAFile is a PEM bundle of the CAs client certificates must
	// chain to; required unless ClientAuth is none.
	ClientCAFile string
	// ClientAuth is the client certificate policy (default none).
	ClientAuth ClientAuth
}

// Server returns a *tls.Config for a server: TLS 1.2 minimum, the
// CipherSuites for TLS 1.2, the certificate from CertFile/KeyFile, and the
// client certificate policy. The files are loaded once here so that
// errors show at start.
// errors: ErrInvalidConfig (missing file, unreadable PEM, key mismatch,
// no CA for client auth, unknown ClientAuth).
func Server(o ServerOptions) (*tls.Config, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, fmt.Errorf("%w: both the certificate and the key file are required", ErrInvalidConfig)
	}
	r := &reloader{certFile: o.CertFile, keyFile: o.KeyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:     MinVersion,
		CipherSuites:   CipherSuites(),
		GetCertificate: r.get,
	}
	switch o.ClientAuth {
	case "", ClientAuthNone:
		cfg.ClientAuth = tls.NoClientCert
		return cfg, nil
	case ClientAuthOptional:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("%w: client auth %q (want none, optional or require)", ErrInvalidConfig, o.ClientAuth)
	}
	if o.ClientCAFile == "" {
		return nil, fmt.Errorf("%w: client auth %q needs a client CA file", ErrInvalidConfig, o.ClientAuth)
	}
	pool, err := LoadCertPool(o.ClientCAFile)
	if err != nil {
		return nil, err
	}
	cfg.ClientCAs = pool
	return cfg, nil
}

// ClientOptions configures a client (DICOM SCU, HTTPS client) side.
type ClientOptions struct {
	// CAFile is a PEM bundle of the CAs the server's certificate must
	// chain to ("": the system roots).
	CAFile string
	// CertFile and KeyFile are the client certificate and key for
	// mutual TLS (both or neither).
	CertFile, KeyFile string
	// ServerName is the name the server certificate must carry (""
	// lets crypto/tls take the host of the address dialled).
	ServerName string
}

// Client returns a *tls.Config for a client: TLS 1.2 minimum, the
// CipherSuites, the CA pool and the optional client certificate.
// errors: ErrInvalidConfig.
func Client(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: MinVersion, CipherSuites: CipherSuites(), ServerName: o.ServerName}
	if o.CAFile != "" {
		pool, err := LoadCertPool(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, fmt.Errorf("%w: set both the client certificate and key, or neither", ErrInvalidConfig)
	}
	if o.CertFile != "" {
		c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %v", ErrInvalidConfig, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// LoadCertPool reads a PEM bundle of CA certificates.
// errors: ErrInvalidConfig (unreadable, or no certificate in it).
func LoadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %v", ErrInvalidConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidConfig, path)
	}
	return pool, nil
}

// reloader serves a certificate re-read when its files change.
type reloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	certMod, keyMod   time.Time
	checked           time.Time
}

func (r *reloader) load() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("%w: certificate/key: %v", ErrInvalidConfig, err)
	}
	cm, km := modTime(r.certFile), modTime(r.keyFile)
	r.mu.Lock()
	r.cert, r.certMod, r.keyMod = &c, cm, km
	r.mu.Unlock()
	return nil
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// get is tls.Config.GetCertificate: it returns the current certificate,
// reloading it when a file's modification time changed. A failed reload
// (e.g. a half-written file) keeps the previous certificate.
func (r *reloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.checked) < time.Second {
		c := r.cert
		r.mu.Unlock()
		return c, nil
	}
	r.checked = now
	changed := !modTime(r.certFile).Equal(r.certMod) || !modTime(r.keyFile).Equal(r.keyMod)
	c := r.cert
	r.mu.Unlock()
	if changed && r.load() == nil {
		r.mu.Lock()
		c = r.cert
		r.mu.Unlock()
	}
	return c, nil
}
