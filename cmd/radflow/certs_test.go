package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/tlsconfig"
)

func TestCertsDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out, errb bytes.Buffer
	if rc := runCerts([]string{"dev", "--out", dir, "--host", "pacs.local"}, &out, &errb); rc != 0 {
		t.Fatalf("certs dev: rc %d\n%s", rc, errb.String())
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if !strings.Contains(out.String(), filepath.Join(dir, f)) {
			t.Errorf("output does not name %s", f)
		}
	}
	for _, want := range []string{"--tls-cert", "pacs.local", "echoscu  +tls", "radflow-dev-client"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The files make a working mutual-TLS server configuration.
	if _, err := tlsconfig.Server(tlsconfig.ServerOptions{CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"), ClientAuth: tlsconfig.ClientAuthRequire}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if rc := runCerts([]string{"dev", "--out", dir}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "--force") {
		t.Fatalf("second run: rc %d, %s", rc, errb.String())
	}
	if rc := runCerts([]string{"dev", "--out", dir, "--force"}, &out, &errb); rc != 0 {
		t.Fatalf("--force: rc %d", rc)
	}
	if rc := runCerts(nil, &out, &errb); rc != 2 {
		t.Fatalf("no subcommand: rc %d", rc)
	}
	if rc := runCerts([]string{"dev", "--help"}, &out, &errb); rc != 0 {
		t.Fatalf("--help: rc %d", rc)
	}
}
