package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
	fmt.Fprintf(stdout, `Development certificates written (for local use only):
  CA:     %s (key %s)
  server: %s (key %s)  SANs: localhost, 127.0.0.1, ::1%s
  client: %s (key %s)  CN: %s

Turn TLS on:
  radflow serve --tls-cert %s --tls-key %s \
    --tls-client-ca %s            # optional: accept/require client certificates (mutual TLS)
  curl --cacert %s https://localhost:8080/healthz
  curl --cacert %s --cert %s --key %s https://localhost:8080/healthz   # mutual TLS

DICOM TLS (dcmtk):
  echoscu  +tls %s %s +cf %s localhost 11112
  storescu +tls %s %s +cf %s -aec RADFLOW localhost 11112 FILE.dcm
`,
		f.CACert, f.CAKey, f.ServerCert, f.ServerKey, extraHosts(hosts), f.ClientCert, f.ClientKey, *clientCN,
		f.ServerCert, f.ServerKey, f.CACert,
		f.CACert, f.CACert, f.ClientCert, f.ClientKey,
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
