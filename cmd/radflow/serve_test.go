package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/inference"
)

func TestServeHelpDocumentsEveryOption(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"serve", "--help"}, io.Discard, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	help := out.String()
	for _, name := range []string{"config", "data", "http", "dicom", "ae", "allowed-calling-aes", "max-associations", "workers",
		"max-queue-depth", "min-free-disk", "max-upload", "models", "ort-lib", "provider", "threads", "shutdown-timeout",
		"keyring", "phi-fuzzy-index", "tls-cert", "tls-key", "tls-client-ca", "dicom-tls-cert", "dicom-tls-key", "dicom-tls-client-ca",
		"dicom-peers", "jwks-url", "jwks-file", "jwt-issuer", "jwt-audience", "jwt-roles-claim", "jwt-org-claim", "policy-dir", "policy-evaluator",
		"audit-key-file", "audit-syslog", "audit-syslog-ca"} {
		if !strings.Contains(help, "-"+name+" ") && !strings.Contains(help, "-"+name+"\n") {
			t.Errorf("--help lacks -%s", name)
		}
		if name != "config" && !strings.Contains(help, "["+envName(name)+"]") {
			t.Errorf("--help lacks %s", envName(name))
		}
	}
	for _, def := range []string{`"./radflow-data"`, `"127.0.0.1:8080"`, `"127.0.0.1:11112"`, `"RADFLOW"`} {
		if !strings.Contains(help, def) {
			t.Errorf("--help lacks default %s", def)
		}
	}
	out.Reset()
	if code := run([]string{"worker", "--help"}, io.Discard, &out); code != 0 || !strings.Contains(out.String(), "PostgreSQL") {
		t.Errorf("worker --help: exit %d\n%s", code, out.String())
	}
}

func TestParseServeDefaultsAndLayers(t *testing.T) {
	cfg, _, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "./radflow-data" || cfg.HTTPAddr != "127.0.0.1:8080" || cfg.DICOMAddr != "127.0.0.1:11112" ||
		cfg.AETitle != "RADFLOW" || cfg.Workers != 2 || cfg.MaxUpload != 1<<30 || cfg.MinFreeDisk != 1<<30 || cfg.Models == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	dir := t.TempDir()
	yml := filepath.Join(dir, "radflow.yaml")
	os.WriteFile(yml, []byte("ae: FILEAE\nhttp: 127.0.0.1:9999\nmax-upload: 2MiB\nallowed-calling-aes: A, B\nworkers: 5\n"), 0o600)
	t.Setenv("RADFLOW_AE", "ENVAE")
	t.Setenv("RADFLOW_MIN_FREE_DISK", "10MB")
	cfg, _, err = parseServe([]string{"--config", yml, "--workers", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AETitle != "ENVAE" || cfg.HTTPAddr != "127.0.0.1:9999" || cfg.MaxUpload != 2<<20 || cfg.MinFreeDisk != 10e6 ||
		cfg.Workers != 3 || strings.Join(cfg.AllowedCallingAEs, ",") != "A,B" {
		t.Errorf("layered: %+v", cfg)
	}
	for _, bad := range [][]string{{"--max-upload", "12XB"}, {"--bogus"}, {"extra"}} {
		if _, _, err := parseServe(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, _, err := parseServe([]string{"--help"}, io.Discard); err != flag.ErrHelp {
		t.Errorf("--help: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "1024": 1024, "1KiB": 1024, "3MiB": 3 << 20, "2GB": 2e9, "1 GiB": 1 << 30, "7B": 7} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "GiB", "99999999999TiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// served is a running `radflow serve` subprocess with its output so far.
type served struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuf
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// stop sends SIGTERM and waits.
func (s *served) stop() { s.cmd.Process.Signal(syscall.SIGTERM); s.cmd.Wait() }

// startServe starts the binary and waits until it prints its listeners.
func startServe(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	return startServeEnv(t, bin, nil, args...).cmd
}

// startServeEnv starts the binary with extra environment variables,
// capturing stdout and stderr, and waits until it prints its listeners.
func startServeEnv(t *testing.T, bin string, env []string, args ...string) *served {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	sv := &served{cmd: cmd, stdout: &lockedBuf{}, stderr: &lockedBuf{}}
	cmd.Stderr = sv.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			sv.stdout.Write(append(sc.Bytes(), '\n'))
			if strings.HasPrefix(strings.TrimSpace(sc.Text()), "workers") {
				select {
				case ready <- true:
				default:
				}
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("radflow serve exited before listening:\n%s", sv.stderr.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("radflow serve did not start within 60 s")
	}
	return sv
}

// buildRadflow builds the binary once per test binary run.
var buildOnce struct {
	sync.Once
	bin string
	err error
	out []byte
}

func buildRadflow(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "radflow-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.bin = filepath.Join(dir, "radflow")
		buildOnce.out, buildOnce.err = exec.Command("go", "build", "-o", buildOnce.bin, ".").CombinedOutput()
	})
	if buildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.bin
}

// radiologistToken creates an API token in DATA/auth.db (as `radflow
// tokens create` does) for reading studies and results.
func radiologistToken(t *testing.T, data string) string {
	t.Helper()
	os.MkdirAll(data, 0o750)
	ts, err := auth.OpenTokenStore(context.Background(), filepath.Join(data, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	tok, _, err := ts.Create(context.Background(), auth.TokenSpec{Name: "test", Roles: []string{auth.RoleRadiologist}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestServeKill9KeepsAcknowledgedInstances: storescu N distinct chest
// radiographs to a `radflow serve` subprocess, kill -9 right after the
// acknowledgements, restart: every acknowledged instance is there and its
// job completes; the restart's sweep cuts back the pack the kill left.
func TestServeKill9KeepsAcknowledgedInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := os.Stat("../../models/chest-xray-pneumonia/1/model.onnx"); err != nil {
		t.Skip("reference model not present yet")
	}
	if _, err := inference.ResolveLibrary(""); err != nil {
		t.Skipf("ONNX Runtime library not found: %v", err)
	}
	if _, err := exec.LookPath("storescu"); err != nil {
		t.Skip("storescu (DCMTK) not installed")
	}
	const chestSOP = "1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888"
	raw, err := os.ReadFile("../../../shared/dicom/nhsx-nih-chestxray/" + chestSOP + ".dcm")
	if err != nil {
		t.Skipf("shared chest radiograph absent: %v", err)
	}
	tmp := t.TempDir()
	bin := buildRadflow(t)
	const n = 8
	var files, uids []string
	for i := range n {
		uid := chestSOP[:len(chestSOP)-4] + fmt.Sprintf("%04d", 1000+i)
		p := filepath.Join(tmp, fmt.Sprintf("cxr%d.dcm", i))
		os.WriteFile(p, bytes.ReplaceAll(raw, []byte(chestSOP), []byte(uid)), 0o600)
		files, uids = append(files, p), append(uids, uid)
	}
	data := filepath.Join(tmp, "data")
	token := radiologistToken(t, data)
	httpAddr, dicomAddr := freePort(t), freePort(t)
	args := []string{"--data", data, "--http", httpAddr, "--dicom", dicomAddr, "--models", "../../models", "--min-free-disk", "0"}
	// Workers 0 first so that jobs are still queued at the kill.
	cmd := startServe(t, bin, append(args, "--workers", "0")...)
	host, port, _ := net.SplitHostPort(dicomAddr)
	sc := exec.Command("storescu", append([]string{"-aec", "RADFLOW", host, port}, files...)...)
	sc.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := sc.CombinedOutput()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}

	// The killed process left its pack with the zero fill ahead of its
	// last blob (at least 24 MiB); the restart's sweep (orphan age 1 ms)
	// cuts it back to the last referenced region.
	pack := filepath.Join(data, "blobs", "packs", "00000001.pack")
	before, err := os.Stat(pack)
	if err != nil || before.Size() < 24<<20 {
		t.Fatalf("pack after kill -9: %v (%v), want the zero fill ahead of the blobs", before, err)
	}
	time.Sleep(5 * time.Millisecond)
	// Acknowledged instances' audit records were staged with their rows;
	// those the mover had not yet appended to the trail are moved at the
	// restart (checked below).
	if db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "radflow.db")+"?mode=ro"); err == nil {
		var staged int
		db.QueryRow(`SELECT count(*) FROM audit_outbox`).Scan(&staged)
		db.Close()
		t.Logf("audit records still staged at the kill: %d", staged)
	}
	cmd = startServe(t, bin, append(args, "--workers", "2", "--orphan-age", "1ms")...)
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}()
	if after, err := os.Stat(pack); err != nil || after.Size() >= before.Size() || after.Size() > int64(n)*(int64(len(raw))+8192) {
		t.Errorf("pack after restart: %v (%v), want cut back from %d bytes to at most %d", after, err, before.Size(), int64(n)*(int64(len(raw))+8192))
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, uid := range uids {
		for {
			var rs []struct {
				Status string `json:"status"`
				Label  string `json:"label"`
			}
			req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/v1/results?instance="+uid, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			json.NewDecoder(resp.Body).Decode(&rs)
			resp.Body.Close()
			if len(rs) != 1 {
				t.Fatalf("instance %s acknowledged before kill -9: %d results after restart", uid, len(rs))
			}
			if rs[0].Status == "done" && (rs[0].Label == "NORMAL" || rs[0].Label == "PNEUMONIA") {
				break
			}
			if rs[0].Status == "failed" || time.Now().After(deadline) {
				t.Fatalf("instance %s: %+v", uid, rs[0])
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Every acknowledged instance has its instance:store record in the
	// verified trail, once (a record moved twice keeps its event id).
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	stopped = true
	dir, keyFile := audit.Paths(data)
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]map[string]bool{}
	if _, err := audit.Scan(dir, key, func(r audit.Record) error {
		if r.Action == "instance:store" && r.Outcome == audit.OutcomeSuccess {
			if events[r.Resource.SOPInstanceUID] == nil {
				events[r.Resource.SOPInstanceUID] = map[string]bool{}
			}
			events[r.Resource.SOPInstanceUID][r.EventID] = true
		}
		return nil
	}); err != nil {
		t.Fatalf("audit trail after kill -9 and restart: %v", err)
	}
	for _, uid := range uids {
		if len(events[uid]) != 1 {
			t.Errorf("instance %s: %d distinct instance:store records in the trail, want 1", uid, len(events[uid]))
		}
	}
}

func TestParseServeSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	peers := filepath.Join(dir, "peers.yaml")
	os.WriteFile(peers, []byte("ae_titles:\n  CT1: {roles: [technologist], organisation: hospital-a}\n"), 0o600)
	t.Setenv("RADFLOW_ADMIN_TOKEN", "env-admin-token-"+strings.Repeat("z", 20))
	cfg, _, err := parseServe([]string{"--dicom-peers", peers, "--jwks-file", peers, "--jwt-issuer", "https://idp", "--policy-dir", dir, "--policy-evaluator", "topdown",
		"--phi-fuzzy-index", "prefix", "--keyring", filepath.Join(dir, "kek.json")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sec := cfg.Security
	if sec.Peers == nil || sec.Peers.AETitles["CT1"].Organisation != "hospital-a" || sec.JWT.Issuer != "https://idp" ||
		sec.JWT.Audience != "radflow" || sec.JWT.RolesClaim != "roles" || sec.PolicyDir != dir || sec.PolicyEvaluator != "topdown" || sec.PHIFuzzyIndex != "prefix" ||
		sec.KeyringFile != filepath.Join(dir, "kek.json") || !strings.HasPrefix(sec.AdminToken, "env-admin-token-") || sec.HTTPTLS != nil {
		t.Errorf("security config: %+v", sec)
	}
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("ae_titles:\n  CT1: {roles: [technologist]}\nbogus: 1\n"), 0o600)
	for _, bad := range [][]string{
		{"--tls-cert", peers},
		{"--tls-client-ca", peers},
		{"--dicom-tls-key", peers},
		{"--tls-cert", peers, "--tls-key", peers},
		{"--dicom-peers", filepath.Join(dir, "bad.yaml")},
		{"--jwks-file", peers},
		{"--jwks-file", peers, "--jwks-url", "https://idp/certs", "--jwt-issuer", "x"},
		{"--audit-syslog", "http://arr:514"},
		{"--phi-fuzzy-index", "trigram"},
	} {
		if _, _, err := parseServe(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
