package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/radflow/radflow/internal/tlsconfig"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runCerts is `radflow certs dev`: a development CA, server and client
// certificate for turning on HTTPS and DICOM TLS locally.
func runCerts(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "dev" {
		fmt.Fprintln(stderr, "Usage: radflow certs dev [--out DIR] [--host NAME]... [--client-cn CN] [--force]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	fs := flag.NewFlagSet("certs dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "./radflow-certs", "output `DIR` (created 0700)")
	var hosts stringList
	fs.Var(&hosts, "host", "extra server certificate `NAME` (DNS name or IP address) besides localhost, 127.0.0.1 and ::1; repeatable")
	clientCN := fs.String("client-cn", "radflow-dev-client", "client certificate subject Common `NAME` (what DIMSE/HTTPS identity mapping matches)")
	force := fs.Bool("force", false, "overwrite existing files")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: radflow certs dev [flags]\n\nWrites a development CA (ca.pem, ca-key.pem), a server certificate for\nlocalhost (server.pem, server-key.pem) and a client certificate for mutual\nTLS (client.pem, client-key.pem): ECDSA P-256 PEM files valid for one year.\nFor local development and tests only; never use them in production.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	f, err := tlsconfig.GenerateDev(*out, tlsconfig.DevOptions{Hosts: hosts, ClientCN: *clientCN, Overwrite: *force})
	if err != nil {
		if errors.Is(err, tlsconfig.ErrExists) {
			fmt.Fprintf(stderr, "radflow certs dev: %v (use --force to replace)\n", err)
		} else {
			fmt.Fprintf(stderr, "radflow certs dev: %v\n", err)
		}
		return 1
	}
	peers, peersNote, err := writeDevPeers(*out, *clientCN, *force)
	if err != nil {
		fmt.Fprintf(stderr, "radflow certs dev: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, `Development certificates written (for local use only):
  CA:     %s (key %s)
  server: %s (key %s)  SANs: localhost, 127.0.0.1, ::1%s
  client: %s (key %s)  CN: %s
  peers:  %s  (maps the client certificate to a technologist%s)

Turn TLS on for both listeners:
  radflow serve \
    --tls-cert %s --tls-key %s \
    --tls-client-ca %s \
    --dicom-tls-cert %s --dicom-tls-key %s \
    --dicom-tls-client-ca %s \
    --dicom-peers %s

  HTTPS:     --tls-cert/--tls-key; --tls-client-ca (optional) verifies client
             certificates when sent; mapped by --dicom-peers they authenticate
             requests without a bearer token.
  DICOM TLS: --dicom-tls-cert/--dicom-tls-key (TLS 1.2+ only; conventional
             port 2762); --dicom-tls-client-ca (optional) requires client
             certificates (mutual TLS), mapped to identities by --dicom-peers.

HTTPS (curl):
  curl --cacert %s https://localhost:8080/healthz
  curl --cacert %s --cert %s --key %s https://localhost:8080/readyz   # mutual TLS

DICOM TLS (dcmtk):
  echoscu  +tls %s %s +cf %s -aec RADFLOW localhost 11112
  storescu +tls %s %s +cf %s -aec RADFLOW localhost 11112 FILE.dcm
`,
		f.CACert, f.CAKey, f.ServerCert, f.ServerKey, extraHosts(hosts), f.ClientCert, f.ClientKey, *clientCN,
		peers, peersNote,
		f.ServerCert, f.ServerKey, f.CACert,
		f.ServerCert, f.ServerKey, f.CACert, peers,
		f.CACert,
		f.CACert, f.ClientCert, f.ClientKey,
		f.ClientKey, f.ClientCert, f.CACert,
		f.ClientKey, f.ClientCert, f.CACert)
	return 0
}

func extraHosts(h []string) string {
	if len(h) == 0 {
		return ""
	}
	return ", " + strings.Join(h, ", ")
}

// writeDevPeers writes DIR/peers.yaml, the --dicom-peers file mapping the
// development client certificate (CN clientCN) to a technologist. An
// existing file is kept unless force; note says which happened.
func writeDevPeers(dir, clientCN string, force bool) (path, note string, err error) {
	path = filepath.Join(dir, "peers.yaml")
	body := fmt.Sprintf("# radflow --dicom-peers file written by `radflow certs dev` (development only).\n"+
		"# Verified client certificates (CN, then SANs) and the identity each maps to.\n"+
		"certificates:\n  %q: {roles: [technologist]}\n", clientCN)
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	fh, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return path, "; existing file kept", nil
	}
	if err != nil {
		return "", "", err
	}
	if _, err := fh.WriteString(body); err != nil {
		fh.Close()
		return "", "", err
	}
	return path, "", fh.Close()
}
