package tlsconfig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// ErrExists is returned by GenerateDev when a file it would write exists.
var ErrExists = errors.New("tlsconfig: file exists")

// DevOptions configures GenerateDev.
type DevOptions struct {
	// Hosts are extra server SANs (DNS names or IP addresses) besides
	// localhost, 127.0.0.1 and ::1.
	Hosts []string
	// ClientCN is the client certificate's subject Common Name (default
	// "radflow-dev-client"): the name a PeerMapper maps to an identity.
	ClientCN string
	// Validity of the certificates (default 1 year).
	Validity time.Duration
	// Overwrite replaces existing files instead of failing with ErrExists.
	Overwrite bool
	// Now is the start of validity (default time.Now); for tests.
	Now func() time.Time
}

// DevFiles are the PEM files GenerateDev wrote (absolute paths).
type DevFiles struct {
	CACert, CAKey         string // ca.pem, ca-key.pem
	ServerCert, ServerKey string // server.pem (chain: leaf, CA), server-key.pem
	ClientCert, ClientKey string // client.pem (chain: leaf, CA), client-key.pem
}

// GenerateDev writes a development CA, a server certificate (SANs
// localhost, 127.0.0.1, ::1 and opts.Hosts; serverAuth) and a client
// certificate (CN opts.ClientCN; clientAuth), all ECDSA P-256, as PEM files
// in dir (created 0700; keys 0600, PKCS#8 unencrypted). They are for local
// development and tests only: the CA key sits next to them.
// errors: ErrExists (unless Overwrite), ErrInvalidConfig (bad host), I/O.
func GenerateDev(dir string, opts DevOptions) (DevFiles, error) {
	if opts.ClientCN == "" {
		opts.ClientCN = "radflow-dev-client"
	}
	if opts.Validity <= 0 {
		opts.Validity = 365 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return DevFiles{}, err
	}
	f := DevFiles{
		CACert: filepath.Join(abs, "ca.pem"), CAKey: filepath.Join(abs, "ca-key.pem"),
		ServerCert: filepath.Join(abs, "server.pem"), ServerKey: filepath.Join(abs, "server-key.pem"),
		ClientCert: filepath.Join(abs, "client.pem"), ClientKey: filepath.Join(abs, "client-key.pem"),
	}
	if !opts.Overwrite {
		for _, p := range []string{f.CACert, f.CAKey, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey} {
			if _, err := os.Lstat(p); err == nil {
				return DevFiles{}, fmt.Errorf("%w: %s", ErrExists, p)
			}
		}
	}
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost", Organization: []string{"radflow development"}},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range opts.Hosts {
		switch ip := net.ParseIP(h); {
		case ip != nil:
			server.IPAddresses = append(server.IPAddresses, ip)
		case h != "" && len(h) <= 253:
			server.DNSNames = append(server.DNSNames, h)
		default:
			return DevFiles{}, fmt.Errorf("%w: host %q", ErrInvalidConfig, h)
		}
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: opts.ClientCN, Organization: []string{"radflow development"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	now := opts.Now().Add(-5 * time.Minute) // tolerate small clock differences
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "radflow development CA", Organization: []string{"radflow development"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return DevFiles{}, err
	}
	caDER, err := sign(ca, ca, caKey, caKey.Public(), now, opts.Validity)
	if err != nil {
		return DevFiles{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return DevFiles{}, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return DevFiles{}, err
	}
	if err := writePEM(f.CACert, 0o644, pemBlock("CERTIFICATE", caDER)); err != nil {
		return DevFiles{}, err
	}
	if err := writeKey(f.CAKey, caKey); err != nil {
		return DevFiles{}, err
	}
	for _, leaf := range []struct {
		tmpl           *x509.Certificate
		certFile, keyF string
	}{{server, f.ServerCert, f.ServerKey}, {client, f.ClientCert, f.ClientKey}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return DevFiles{}, err
		}
		der, err := sign(leaf.tmpl, caCert, caKey, key.Public(), now, opts.Validity)
		if err != nil {
			return DevFiles{}, err
		}
		if err := writePEM(leaf.certFile, 0o644, pemBlock("CERTIFICATE", der), pemBlock("CERTIFICATE", caDER)); err != nil {
			return DevFiles{}, err
		}
		if err := writeKey(leaf.keyF, key); err != nil {
			return DevFiles{}, err
		}
	}
	return f, nil
}

func sign(tmpl, parent *x509.Certificate, parentKey crypto.Signer, pub crypto.PublicKey, notBefore time.Time, validity time.Duration) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	tmpl.NotBefore = notBefore
	tmpl.NotAfter = notBefore.Add(validity)
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
}

func pemBlock(typ string, der []byte) *pem.Block { return &pem.Block{Type: typ, Bytes: der} }

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, 0o600, pemBlock("PRIVATE KEY", der))
}

// writePEM writes blocks to path with perm, through a temp file renamed
// into place.
func writePEM(path string, perm os.FileMode, blocks ...*pem.Block) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.pem")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	for _, b := range blocks {
		if err := pem.Encode(tmp, b); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
