package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dicomweb"
	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/models"
)

const (
	sharedDICOM = "../../../shared/dicom"
	chestName   = "nhsx-nih-chestxray/1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm"
	chestSOP    = "1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888"
	chestStudy  = "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708"
	ctName      = "cornerstoneWADOImageLoader/CTImage.dcm"
	ctSOP       = "1.2.840.113619.2.30.1.1762295590.1623.978668950.109"
	ctStudy     = "1.2.840.113619.2.30.1.1762295590.1623.978668949.886"
	modelsDir   = "../../models"
)

func sharedPath(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(sharedDICOM, name)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("shared DICOM data absent (%s): lay out /work/shared beside the repository", p)
	}
	return p
}

func readShared(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(sharedPath(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// withUID returns b with every occurrence of the UID old replaced by a UID
// of the same length ending in n (so every element length stays valid).
func withUID(tb testing.TB, b []byte, old string, n int) []byte {
	tb.Helper()
	nu := uidWith(old, n)
	if !bytes.Contains(b, []byte(old)) {
		tb.Fatalf("UID %s not in the file", old)
	}
	return bytes.ReplaceAll(b, []byte(old), []byte(nu))
}

// uidWith is the UID withUID writes.
func uidWith(old string, n int) string {
	suffix := fmt.Sprintf("%08d", n)
	return old[:len(old)-len(suffix)] + suffix
}

// testRepo loads the repository's models/ directory, skipping when the
// reference model or ONNX Runtime is missing.
func testRepo(tb testing.TB) *models.Repository {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(modelsDir, "chest-xray-pneumonia/1/model.onnx")); err != nil {
		tb.Skip("reference model models/chest-xray-pneumonia/1/model.onnx not present yet (make train)")
	}
	if _, err := inference.ResolveLibrary(""); err != nil {
		tb.Skipf("ONNX Runtime library not found (set RADFLOW_ORT_LIB or run scripts/fetch-ort.sh): %v", err)
	}
	repo, err := models.LoadDir(modelsDir)
	if err != nil {
		tb.Fatal(err)
	}
	return repo
}

type logWriter struct{ tb testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startService starts a service on dir with loopback listeners on free
// ports and one worker; it is shut down at the end of the test.
func startService(tb testing.TB, dir string, repo *models.Repository, mod func(*Config)) *Service {
	tb.Helper()
	cfg := Config{
		DataDir: dir, HTTPAddr: "127.0.0.1:0", DICOMAddr: "127.0.0.1:0", Workers: 1, Models: repo,
		Logger: slog.New(slog.NewTextHandler(logWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx := context.Background()
	s, err := New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stopService(tb, s) })
	// The end-to-end helpers act as one client allowed to store, read
	// studies and results (ai_service, radiologist) and metrics (admin).
	serviceTokens.Store(s, newToken(tb, s, "", auth.RoleAIService, auth.RoleRadiologist, auth.RoleAdmin))
	return s
}

// serviceTokens maps a started *Service to its test client's API token.
var serviceTokens sync.Map

// newToken creates an API token with roles and organisation org.
func newToken(tb testing.TB, s *Service, org string, roles ...string) string {
	tb.Helper()
	tok, _, err := s.Tokens().Create(context.Background(), auth.TokenSpec{Name: "test", Roles: roles, Organisation: org})
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// authHeader is the Authorization header of s's test client.
func authHeader(s *Service) http.Header {
	tok, _ := serviceTokens.Load(s)
	return http.Header{"Authorization": {"Bearer " + tok.(string)}}
}

// webClient is a DICOMweb client of s's test client.
func webClient(s *Service) dicomweb.Client {
	return dicomweb.Client{BaseURL: base(s) + "/dicomweb", Header: authHeader(s)}
}

// get sends GET url with header h.
func get(tb testing.TB, url string, h http.Header) *http.Response {
	tb.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

func stopService(tb testing.TB, s *Service) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		tb.Errorf("shutdown: %v", err)
	}
}

func base(s *Service) string { return "http://" + s.HTTPAddr() }

// storescu sends files with DCMTK's storescu; it returns the combined
// output and the exit error.
func storescu(tb testing.TB, addr string, files ...string) (string, error) {
	tb.Helper()
	if _, err := exec.LookPath("storescu"); err != nil {
		tb.Skip("storescu (DCMTK) not installed")
	}
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-aec", "RADFLOW", host, port}, files...)
	cmd := exec.Command("storescu", args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// getJSON GETs url as s's test client and decodes a 200 answer into v.
func getJSON(tb testing.TB, s *Service, url string, v any) int {
	tb.Helper()
	resp := get(tb, url, authHeader(s))
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			tb.Fatalf("GET %s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// results returns the results of an instance from the REST API.
func listResults(tb testing.TB, s *Service, sop string) []api.Result {
	tb.Helper()
	var rs []api.Result
	if code := getJSON(tb, s, base(s)+"/api/v1/results?instance="+sop, &rs); code != 200 {
		tb.Fatalf("results: HTTP %d", code)
	}
	return rs
}

// waitDone polls the results API until every result of sop is done or
// failed (at most 60 s) and returns them.
func waitDone(tb testing.TB, s *Service, sop string) []api.Result {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs := listResults(tb, s, sop)
		finished := len(rs) > 0
		for _, r := range rs {
			if r.Status != api.StatusDone && r.Status != api.StatusFailed {
				finished = false
			}
		}
		if finished {
			return rs
		}
		if time.Now().After(deadline) {
			tb.Fatalf("results of %s not finished after 60 s: %+v", sop, rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// qido returns the DICOM JSON array of a QIDO-RS path.
func qido(tb testing.TB, s *Service, path string) []map[string]struct {
	VR    string `json:"vr"`
	Value []any  `json:"Value"`
} {
	tb.Helper()
	var out []map[string]struct {
		VR    string `json:"vr"`
		Value []any  `json:"Value"`
	}
	if code := getJSON(tb, s, base(s)+"/dicomweb"+path, &out); code != 200 {
		tb.Fatalf("QIDO %s: HTTP %d", path, code)
	}
	return out
}

// wadoInstance retrieves one instance with WADO-RS and returns its bytes.
func wadoInstance(tb testing.TB, s *Service, study, series, sop string) []byte {
	tb.Helper()
	req, _ := http.NewRequest("GET", base(s)+"/dicomweb/studies/"+study+"/series/"+series+"/instances/"+sop, nil)
	req.Header.Set("Accept", `multipart/related; type="application/dicom"`)
	req.Header["Authorization"] = authHeader(s)["Authorization"]
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("WADO-RS: HTTP %d", resp.StatusCode)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		tb.Fatal(err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	p, err := mr.NextPart()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(p)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		tb.Fatalf("WADO-RS of one instance: more than one part (%v)", err)
	}
	return b
}

// counts returns the instance rows and the blobs of a service: blob files
// and the objects in its pack files (keys.Inventory: a region given back
// by an aborted write has its header zeroed and is not counted).
func counts(tb testing.TB, s *Service) (rows, blobs int) {
	tb.Helper()
	if err := s.Store().ReadDB().QueryRow(`SELECT count(*) FROM instances`).Scan(&rows); err != nil {
		tb.Fatal(err)
	}
	st, err := keys.Inventory(context.Background(), filepath.Dir(s.Blobs().Root()))
	if err != nil {
		tb.Fatal(err)
	}
	return rows, st.Objects + st.Plaintext
}

// dciodvfyErrors returns dciodvfy's Error lines for a Part 10 file.
func dciodvfyErrors(tb testing.TB, data []byte) []string {
	tb.Helper()
	if _, err := exec.LookPath("dciodvfy"); err != nil {
		tb.Log("dciodvfy (dicom3tools) not installed: IOD validation skipped")
		return nil
	}
	path := filepath.Join(tb.TempDir(), "sr.dcm")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, _ := exec.Command("dciodvfy", path).CombinedOutput() // non-zero on warnings too
	if !strings.Contains(string(out), "ComprehensiveSR") {
		tb.Errorf("dciodvfy did not recognise a Comprehensive SR")
	}
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Error") {
			errs = append(errs, line)
		}
	}
	return errs
}
