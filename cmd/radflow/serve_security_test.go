package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var reToken = regexp.MustCompile(`rf_[A-Za-z0-9_-]{43}`)

// get sends GET url with an optional bearer token through cl.
func getWith(t *testing.T, cl *http.Client, url, token string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestServeSecureByDefault: the first start prints an admin token once on
// stdout (never in the logs) and the TLS hint; requests need it; a later
// start prints none; RADFLOW_ADMIN_TOKEN seeds one; --tls-cert/--tls-key
// with `radflow certs dev` certificates serve HTTPS; an edited audit
// record is reported by `radflow audit verify`.
func TestServeSecureByDefault(t *testing.T) {
	bin := buildRadflow(t)
	t.Setenv("RADFLOW_ADMIN_TOKEN", "")
	t.Setenv("RADFLOW_KEK", "")
	data := filepath.Join(t.TempDir(), "data")
	httpAddr, dicomAddr := freePort(t), freePort(t)
	args := []string{"--data", data, "--http", httpAddr, "--dicom", dicomAddr, "--workers", "0", "--min-free-disk", "0"}

	sv := startServeEnv(t, bin, nil, args...)
	out := sv.stdout.String()
	tok := reToken.FindString(out)
	if tok == "" || strings.Count(out, tok) != 1 || !strings.Contains(out, "TLS       off: radflow certs dev") {
		t.Fatalf("first start output lacks the admin token or the TLS hint:\n%s", out)
	}
	url := "http://" + httpAddr + "/api/v1/models"
	if code, _ := getWith(t, http.DefaultClient, url, tok); code != 200 {
		t.Errorf("admin token: %d", code)
	}
	if code, h := getWith(t, http.DefaultClient, url, ""); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d %v", code, h)
	}
	if code, _ := getWith(t, http.DefaultClient, "http://"+httpAddr+"/healthz", ""); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	sv.stop()
	if strings.Contains(sv.stderr.String(), tok) || strings.Contains(sv.stderr.String(), "rf_") {
		t.Errorf("the admin token reached the logs")
	}

	// Later start: nothing printed; RADFLOW_ADMIN_TOKEN seeds a token.
	seeded := "seeded-admin-token-" + strings.Repeat("k", 24)
	sv = startServeEnv(t, bin, []string{"RADFLOW_ADMIN_TOKEN=" + seeded}, args...)
	if reToken.MatchString(sv.stdout.String()) || strings.Contains(sv.stdout.String(), seeded) {
		t.Errorf("second start printed a token:\n%s", sv.stdout.String())
	}
	if code, _ := getWith(t, http.DefaultClient, url, seeded); code != 200 {
		t.Errorf("RADFLOW_ADMIN_TOKEN: %d", code)
	}
	sv.stop()
	if strings.Contains(sv.stderr.String(), seeded) {
		t.Errorf("RADFLOW_ADMIN_TOKEN reached the logs")
	}

	// HTTPS with development certificates.
	certs := filepath.Join(t.TempDir(), "certs")
	if code, _, errOut := runCLI("certs", "dev", "--out", certs); code != 0 {
		t.Fatalf("certs dev: %d %s", code, errOut)
	}
	sv = startServeEnv(t, bin, []string{"RADFLOW_ADMIN_TOKEN=" + seeded}, append(args,
		"--tls-cert", filepath.Join(certs, "server.pem"), "--tls-key", filepath.Join(certs, "server-key.pem"))...)
	if !strings.Contains(sv.stdout.String(), "https://") {
		t.Errorf("HTTPS start output:\n%s", sv.stdout.String())
	}
	pem, _ := os.ReadFile(filepath.Join(certs, "ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	_, port, _ := net.SplitHostPort(httpAddr)
	if code, _ := getWith(t, cl, "https://localhost:"+port+"/api/v1/models", seeded); code != 200 {
		t.Errorf("HTTPS: %d", code)
	}
	sv.stop()

	// The trail verifies; an edited record is reported.
	if code, stdout, stderr := runCLI("audit", "verify", "--data", data); code != 0 || !strings.Contains(stdout, "ok:") {
		t.Fatalf("audit verify: %d %s %s", code, stdout, stderr)
	}
	seg := filepath.Join(data, "audit", "audit-000001.jsonl")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte(`"outcome":"unauthenticated"`), []byte(`"outcome":"success"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatalf("no unauthenticated record in the trail:\n%s", b)
	}
	if err := os.WriteFile(seg, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("audit", "verify", "--data", data)
	if code != 1 || !strings.Contains(stdout+stderr, "modified") {
		t.Errorf("audit verify of an edited trail: %d\n%s%s", code, stdout, stderr)
	}
}
