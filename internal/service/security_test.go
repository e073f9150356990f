package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/tlsconfig"
)

// bundledRepo is the models built into the binary: the security tests
// need no inference, so they run without ONNX Runtime (Workers 0).
func bundledRepo(tb testing.TB) *models.Repository {
	tb.Helper()
	repo, err := models.Bundled()
	if err != nil {
		tb.Fatal(err)
	}
	return repo
}

// startNoWorkers starts a service without inference workers.
func startNoWorkers(tb testing.TB, mod func(*Config)) *Service {
	tb.Helper()
	return startService(tb, tb.TempDir(), bundledRepo(tb), func(c *Config) {
		c.Workers = 0
		if mod != nil {
			mod(c)
		}
	})
}

// records returns the audit trail's records (verified) in chain order, after moving
// the records staged with instance rows (the outbox) into it.
func records(tb testing.TB, s *Service) []audit.Record {
	tb.Helper()
	if s.outbox != nil {
		if _, err := s.outbox.drain(context.Background()); err != nil {
			tb.Fatalf("moving staged audit records: %v", err)
		}
	}
	dir, keyFile := audit.Paths(s.cfg.DataDir)
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	var out []audit.Record
	if _, err := audit.Scan(dir, key, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		tb.Fatalf("audit trail does not verify: %v", err)
	}
	return out
}

// lastRecord returns the last record matching f.
func lastRecord(tb testing.TB, s *Service, f func(audit.Record) bool) audit.Record {
	tb.Helper()
	rs := records(tb, s)
	for i := len(rs) - 1; i >= 0; i-- {
		if f(rs[i]) {
			return rs[i]
		}
	}
	tb.Fatalf("no matching audit record among %d", len(rs))
	return audit.Record{}
}

// do sends method url with the bearer token (none when "") and extra
// headers, and returns the status, the response headers and the body.
func do(tb testing.TB, method, url, token string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// stowAs stores data with STOW-RS as token and returns the HTTP status.
func stowAs(tb testing.TB, s *Service, token string, data []byte) int {
	tb.Helper()
	body, ctype := stowBody(data)
	code, _, _ := do(tb, "POST", base(s)+"/dicomweb/studies", token, body, map[string]string{"Content-Type": ctype, "Accept": "application/dicom+json"})
	return code
}

// TestUnauthenticatedAndDenied: no or a bad credential is 401 with
// WWW-Authenticate and an authentication record; a role the policy does
// not grant (auditor reading studies, radiologist reading metrics) is 403
// with a denied record naming the decision; /healthz needs nothing,
// /readyz a credential.
func TestUnauthenticatedAndDenied(t *testing.T) {
	s := startNoWorkers(t, nil)
	url := base(s) + "/dicomweb/studies/" + ctStudy + "/series"

	code, h, _ := do(t, "GET", url, "", nil, nil)
	if code != 401 || h.Get("WWW-Authenticate") != `Bearer realm="radflow"` {
		t.Fatalf("no credentials: %d, WWW-Authenticate %q", code, h.Get("WWW-Authenticate"))
	}
	r := lastRecord(t, s, func(r audit.Record) bool { return r.Action == audit.ActionAuthentication })
	if r.Outcome != audit.OutcomeUnauthenticated || r.SubjectKind != audit.KindAnonymous || r.Detail["reason"] != "no_credentials" ||
		r.Resource.StudyInstanceUID != ctStudy || r.Detail["route"] != "GET /dicomweb/studies/{study}/series" || r.Detail["http_status"] != "401" {
		t.Errorf("401 record: %+v", r)
	}
	code, h, _ = do(t, "GET", url, "rf_"+strings.Repeat("x", 43), nil, nil)
	if code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("bad token: %d, WWW-Authenticate %q", code, h.Get("WWW-Authenticate"))
	}
	if r := lastRecord(t, s, func(r audit.Record) bool { return r.Action == audit.ActionAuthentication }); r.Detail["reason"] != "invalid_credentials" {
		t.Errorf("bad token record: %+v", r)
	}

	auditor := newToken(t, s, "", auth.RoleAuditor)
	code, _, _ = do(t, "GET", url, auditor, nil, nil)
	if code != 403 {
		t.Fatalf("auditor reading a study: %d, want 403", code)
	}
	r = lastRecord(t, s, func(r audit.Record) bool { return r.Outcome == audit.OutcomeDenied })
	if r.Action != "study:read" || r.PolicyDecisionID == "" || len(r.Roles) != 1 || r.Roles[0] != "auditor" ||
		r.Resource.StudyInstanceUID != ctStudy || r.Detail["reason"] != "policy_denied" || !strings.HasPrefix(r.SubjectID, "tok_") {
		t.Errorf("403 record: %+v", r)
	}
	radiologist := newToken(t, s, "", auth.RoleRadiologist)
	if code, _, _ := do(t, "GET", base(s)+"/metrics", radiologist, nil, nil); code != 403 {
		t.Errorf("radiologist reading /metrics: %d, want 403", code)
	}
	if code, _, _ := do(t, "GET", base(s)+"/healthz", "", nil, nil); code != 200 {
		t.Errorf("/healthz without credentials: %d", code)
	}
	if code, _, _ := do(t, "GET", base(s)+"/readyz", "", nil, nil); code != 401 {
		t.Errorf("/readyz without credentials: %d, want 401", code)
	}
	if code, _, _ := do(t, "GET", base(s)+"/readyz", auditor, nil, nil); code != 200 {
		t.Errorf("/readyz with a token: %d", code)
	}
	// A malformed purpose of use is the caller's error, and is recorded.
	if code, _, body := do(t, "GET", url, radiologist, nil, map[string]string{"X-Purpose-Of-Use": "treat me"}); code != 400 ||
		!strings.Contains(string(body), "X-Purpose-Of-Use") {
		t.Errorf("bad purpose: %d %s", code, body)
	}
	// A research purpose may not read identified studies.
	if code, _, _ := do(t, "GET", url, radiologist, nil, map[string]string{"X-Purpose-Of-Use": "HRESCH"}); code != 403 {
		t.Errorf("HRESCH purpose: %d, want 403", code)
	}
}

// TestOrganisationsAndBreakGlass: a technologist of hospital-a stores a CT
// by STOW-RS (allowed, recorded per instance, the study owned by
// hospital-a); a referring physician of hospital-b is denied its study and
// finds nothing in a collection search, one of hospital-a reads it; with
// X-Break-Glass and a reason hospital-b's physician gets in, and the
// record is flagged.
func TestOrganisationsAndBreakGlass(t *testing.T) {
	ct := readShared(t, ctName)
	s := startNoWorkers(t, nil)
	tech := newToken(t, s, "hospital-a", auth.RoleTechnologist)
	if code := stowAs(t, s, tech, ct); code != 200 {
		t.Fatalf("technologist STOW: %d", code)
	}
	r := lastRecord(t, s, func(r audit.Record) bool { return r.Detail["operation"] == "stow-instance" })
	if r.Action != "instance:store" || r.Outcome != audit.OutcomeSuccess || r.Resource.SOPInstanceUID != ctSOP ||
		r.Resource.StudyInstanceUID != ctStudy || r.Organisation != "hospital-a" || r.PolicyDecisionID == "" {
		t.Errorf("STOW instance record: %+v", r)
	}
	// An auditor may not store.
	if code := stowAs(t, s, newToken(t, s, "hospital-a", auth.RoleAuditor), ct); code != 403 {
		t.Errorf("auditor STOW: %d, want 403", code)
	}

	studyURL := base(s) + "/dicomweb/studies/" + ctStudy + "/series"
	refA := newToken(t, s, "hospital-a", auth.RoleReferringPhysician)
	refB := newToken(t, s, "hospital-b", auth.RoleReferringPhysician)
	if code, _, body := do(t, "GET", studyURL, refA, nil, nil); code != 200 || !strings.Contains(string(body), ctStudy) {
		t.Errorf("referring physician of hospital-a: %d %s", code, body)
	}
	if code, _, _ := do(t, "GET", studyURL, refB, nil, nil); code != 403 {
		t.Errorf("referring physician of hospital-b: %d, want 403", code)
	}
	// Collection-level search: scoped to the subject's organisation.
	countStudies := func(token string) int {
		code, _, body := do(t, "GET", base(s)+"/dicomweb/studies", token, nil, nil)
		if code != 200 {
			t.Fatalf("QIDO /studies: %d %s", code, body)
		}
		var rows []map[string]any
		if len(body) > 0 {
			if err := json.Unmarshal(body, &rows); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
		}
		return len(rows)
	}
	if a, b := countStudies(refA), countStudies(refB); a != 1 || b != 0 {
		t.Errorf("scoped QIDO /studies: hospital-a finds %d, hospital-b %d; want 1 and 0", a, b)
	}

	// Break-glass without a reason is refused; with one it is granted and flagged.
	if code, _, _ := do(t, "GET", studyURL, refB, nil, map[string]string{"X-Break-Glass": ""}); code != 403 {
		t.Errorf("break-glass without reason: %d, want 403", code)
	}
	reason := "unconscious patient in the emergency department"
	if code, _, _ := do(t, "GET", studyURL, refB, nil, map[string]string{"X-Break-Glass": reason, "X-Purpose-Of-Use": "ETREAT"}); code != 200 {
		t.Fatalf("break-glass with reason: %d", code)
	}
	r = lastRecord(t, s, func(r audit.Record) bool { return r.BreakGlass })
	if r.Outcome != audit.OutcomeSuccess || r.BreakGlassReason != reason || r.Organisation != "hospital-b" || r.PurposeOfUse != "ETREAT" ||
		r.Resource.StudyInstanceUID != ctStudy || r.PolicyDecisionID == "" {
		t.Errorf("break-glass record: %+v", r)
	}
	// An ordinary grant with the header set is not break-glass.
	if code, _, _ := do(t, "GET", studyURL, refA, nil, map[string]string{"X-Break-Glass": reason}); code != 200 {
		t.Errorf("hospital-a with break-glass header: %d", code)
	}
	if r := records(t, s); r[len(r)-1].BreakGlass {
		t.Errorf("a normal grant flagged as break-glass: %+v", r[len(r)-1])
	}
}

// TestDIMSEPeersPolicy: with a peers file, an unknown calling AE is
// rejected at association time (recorded), a mapped AE whose role may not
// store gets 0124 (recorded, nothing stored), a technologist AE stores.
func TestDIMSEPeersPolicy(t *testing.T) {
	ct := readShared(t, ctName)
	s := startNoWorkers(t, func(c *Config) {
		c.Security.Peers = &auth.PeerConfig{AETitles: map[string]auth.Identity{
			"MODALITY": {Roles: []string{auth.RoleTechnologist}, Organisation: "hospital-a"},
			"VIEWER":   {Roles: []string{auth.RoleRadiologist}},
		}}
	})
	ctx := context.Background()
	meta, off, err := dimse.ReadFileMeta(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	ds := ct[off:]
	pcs := []dimse.PresentationContext{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}}
	dial := func(ae string) (*dimse.Client, error) {
		return dimse.Dial(ctx, s.DICOMAddr(), dimse.ClientConfig{CallingAETitle: ae, CalledAETitle: "RADFLOW"}, pcs)
	}
	if _, err := dial("STRANGER"); !errors.Is(err, dimse.ErrAssociationRejected) {
		t.Fatalf("unknown AE: %v, want a rejection", err)
	}
	r := lastRecord(t, s, func(r audit.Record) bool { return r.Action == audit.ActionAuthentication })
	if r.Protocol != audit.ProtocolDIMSE || r.Outcome != audit.OutcomeUnauthenticated || r.Detail["calling_ae"] != "STRANGER" {
		t.Errorf("rejection record: %+v", r)
	}
	viewer, err := dial("VIEWER")
	if err != nil {
		t.Fatal(err)
	}
	st, err := viewer.Store(ctx, meta.MediaStorageSOPClassUID, ctSOP, meta.TransferSyntaxUID, bytes.NewReader(ds), int64(len(ds)))
	viewer.Release(ctx)
	if err != nil || st != 0x0124 {
		t.Fatalf("radiologist AE C-STORE: status %#04x %v, want 0124", st, err)
	}
	r = lastRecord(t, s, func(r audit.Record) bool { return r.Outcome == audit.OutcomeDenied })
	if r.SubjectID != "VIEWER" || r.Action != "instance:store" || r.Detail["dimse_status"] != "0124" || r.PolicyDecisionID == "" ||
		r.Resource.SOPInstanceUID != ctSOP {
		t.Errorf("0124 record: %+v", r)
	}
	if rows, blobs := counts(t, s); rows != 0 || blobs != 0 {
		t.Fatalf("denied C-STORE stored %d rows, %d blobs", rows, blobs)
	}
	// The policy is asked as soon as the command is in, but a refusal is
	// recorded only once it is answered: an association that breaks mid
	// data set was never answered 0124 and gets no denied record.
	denied := func() (n int) {
		for _, r := range records(t, s) {
			if r.Outcome == audit.OutcomeDenied && r.Action == "instance:store" {
				n++
			}
		}
		return n
	}
	before := denied()
	viewer, err = dial("VIEWER")
	if err != nil {
		t.Fatal(err)
	}
	broken := io.MultiReader(bytes.NewReader(ds[:len(ds)/2]), iotest.ErrReader(errors.New("sender gave up")))
	if _, err := viewer.Store(ctx, meta.MediaStorageSOPClassUID, ctSOP, meta.TransferSyntaxUID, broken, int64(len(ds))); err == nil {
		t.Fatal("a C-STORE whose data set broke off succeeded")
	}
	viewer.Abort()
	time.Sleep(200 * time.Millisecond) // the server notices the abort
	if n := denied(); n != before {
		t.Errorf("a C-STORE broken off mid data set left %d denied records, want none", n-before)
	}
	mod, err := dial("MODALITY")
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Release(ctx)
	if st, err := mod.Store(ctx, meta.MediaStorageSOPClassUID, ctSOP, meta.TransferSyntaxUID, bytes.NewReader(ds), int64(len(ds))); err != nil || st != 0 {
		t.Fatalf("technologist AE C-STORE: %#04x %v", st, err)
	}
	r = lastRecord(t, s, func(r audit.Record) bool {
		return r.Outcome == audit.OutcomeSuccess && r.Protocol == audit.ProtocolDIMSE
	})
	if r.SubjectID != "MODALITY" || r.SubjectKind != "ae" || r.Organisation != "hospital-a" || r.Resource.StudyInstanceUID != ctStudy ||
		r.Resource.SOPInstanceUID != ctSOP || r.Detail["dimse_status"] != "0000" || r.Detail["auth_method"] != "ae" {
		t.Errorf("C-STORE record: %+v", r)
	}
	if org, _ := s.owners.StudyOrganisation(ctx, ctStudy); org != "hospital-a" {
		t.Errorf("study owner %q, want hospital-a", org)
	}
}

// TestInsecureDefaultRefused: the any-AE default is loopback only.
func TestInsecureDefaultRefused(t *testing.T) {
	_, err := New(context.Background(), Config{DataDir: t.TempDir(), DICOMAddr: "0.0.0.0:0", Models: bundledRepo(t)})
	if !errors.Is(err, ErrInsecureDefault) {
		t.Fatalf("non-loopback DICOM without peers: %v", err)
	}
}

// TestAuditFailureFailsClosed: with the trail closed, HTTP requests that
// need a record answer 500 and store nothing, C-STORE answers 0110 and
// stores nothing, /readyz reports the trail.
func TestAuditFailureFailsClosed(t *testing.T) {
	ct := readShared(t, ctName)
	s := startNoWorkers(t, nil)
	tech := newToken(t, s, "", auth.RoleTechnologist)
	if err := s.Trail().Close(); err != nil {
		t.Fatal(err)
	}
	if code := stowAs(t, s, tech, ct); code != 500 {
		t.Errorf("STOW with a closed trail: %d, want 500", code)
	}
	if code, _, _ := do(t, "GET", base(s)+"/dicomweb/studies", tech, nil, nil); code != 500 {
		t.Errorf("QIDO with a closed trail: %d, want 500", code)
	}
	if code, _, _ := do(t, "GET", base(s)+"/dicomweb/studies", "", nil, nil); code != 500 {
		t.Errorf("unauthenticated with a closed trail: %d, want 500 (the refusal cannot be recorded)", code)
	}
	code, _, body := do(t, "GET", base(s)+"/readyz", tech, nil, nil)
	if code != 503 || !strings.Contains(string(body), "closed") {
		t.Errorf("/readyz with a closed trail: %d %s", code, body)
	}
	ctx := context.Background()
	meta, off, err := dimse.ReadFileMeta(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	scu, err := dimse.Dial(ctx, s.DICOMAddr(), dimse.ClientConfig{CalledAETitle: "RADFLOW"},
		[]dimse.PresentationContext{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}})
	if err != nil {
		t.Fatal(err)
	}
	defer scu.Release(ctx)
	ds := ct[off:]
	if st, err := scu.Store(ctx, meta.MediaStorageSOPClassUID, ctSOP, meta.TransferSyntaxUID, bytes.NewReader(ds), int64(len(ds))); err != nil || st != 0x0110 {
		t.Errorf("C-STORE with a closed trail: %#04x %v, want 0110", st, err)
	}
	if rows, blobs := counts(t, s); rows != 0 || blobs != 0 {
		t.Fatalf("with a closed trail: %d rows, %d blobs stored", rows, blobs)
	}
}

// TestTLS: HTTPS and DICOM TLS (dcmtk storescu +tls with mutual TLS) with
// `radflow certs dev` certificates; the client certificate maps to a
// technologist through the peers configuration.
func TestTLS(t *testing.T) {
	if _, err := exec.LookPath("storescu"); err != nil {
		t.Skip("storescu (DCMTK) not installed")
	}
	ct := sharedPath(t, ctName)
	certs, err := tlsconfig.GenerateDev(filepath.Join(t.TempDir(), "certs"), tlsconfig.DevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	httpTLS, err := tlsconfig.Server(tlsconfig.ServerOptions{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	dicomTLS, err := tlsconfig.Server(tlsconfig.ServerOptions{CertFile: certs.ServerCert, KeyFile: certs.ServerKey,
		ClientCAFile: certs.CACert, ClientAuth: tlsconfig.ClientAuthRequire})
	if err != nil {
		t.Fatal(err)
	}
	s := startNoWorkers(t, func(c *Config) {
		c.Security.HTTPTLS, c.Security.DICOMTLS = httpTLS, dicomTLS
		c.Security.Peers = &auth.PeerConfig{Certificates: map[string]auth.Identity{
			"radflow-dev-client": {Roles: []string{auth.RoleTechnologist}, Organisation: "hospital-a"}}}
	})
	host, port, _ := net.SplitHostPort(s.DICOMAddr())
	cmd := exec.Command("storescu", "+tls", certs.ClientKey, certs.ClientCert, "+cf", certs.CACert, "-aec", "RADFLOW", host, port, ct)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storescu +tls: %v\n%s", err, out)
	}
	r := lastRecord(t, s, func(r audit.Record) bool { return r.Protocol == audit.ProtocolDIMSE })
	if r.Outcome != audit.OutcomeSuccess || r.SubjectID != "radflow-dev-client" || r.Detail["auth_method"] != "tls" {
		t.Errorf("DICOM TLS record: %+v", r)
	}
	// Plain DIMSE to the TLS port is not an association.
	if out, err := storescu(t, s.DICOMAddr(), ct); err == nil {
		t.Errorf("plain storescu to the DICOM TLS port succeeded:\n%s", out)
	}

	pem, err := os.ReadFile(certs.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	_, port, _ = net.SplitHostPort(s.HTTPAddr())
	tok, _ := serviceTokens.Load(s)
	req, _ := http.NewRequest("GET", "https://localhost:"+port+"/dicomweb/studies/"+ctStudy+"/series", nil)
	req.Header.Set("Authorization", "Bearer "+tok.(string))
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), ctStudy) || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("HTTPS QIDO: %d %s", resp.StatusCode, b)
	}
	if resp, err := http.Get("http://" + s.HTTPAddr() + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP to the HTTPS listener answered 200")
		}
		resp.Body.Close()
	}
}

// TestEncryptedAtRestEndToEnd: a copy of the NIH radiograph with a known
// Patient's Name, Patient ID and birth date (dcmodify) goes in by
// storescu; its result and SR come out (QIDO, WADO through the blob
// codec, the original data set bytes), the radiologist's reads are
// recorded with study UIDs, and no file under the data directory — the
// audit trail included — contains the name, ID or birth date in plain text.
func TestEncryptedAtRestEndToEnd(t *testing.T) {
	repo := testRepo(t)
	if _, err := exec.LookPath("dcmodify"); err != nil {
		t.Skip("dcmodify (DCMTK) not installed")
	}
	const name, pid, birth = "Zyxwvut^Qponmlk", "RFPID-7731942", "19470315"
	src := readShared(t, chestName)
	file := filepath.Join(t.TempDir(), "cxr.dcm")
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("dcmodify", "-nb", "-i", "(0010,0010)="+name, "-i", "(0010,0020)="+pid,
		"-i", "(0010,0030)="+birth, file).CombinedOutput(); err != nil {
		t.Fatalf("dcmodify: %v\n%s", err, out)
	}
	sent, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(sent, []byte(pid)) {
		t.Fatal("dcmodify did not set the Patient ID")
	}
	dir := t.TempDir()
	s := startService(t, dir, repo, nil)
	// -xi: propose the file's own transfer syntax (Implicit VR LE) only,
	// so that storescu sends the data set bytes unchanged.
	host, port, _ := net.SplitHostPort(s.DICOMAddr())
	if out, err := exec.Command("storescu", "-xi", "-aec", "RADFLOW", host, port, file).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	rad := newToken(t, s, "", auth.RoleRadiologist)
	serviceTokens.Store(s, rad) // the helpers below read as a radiologist
	res := checkResult(t, waitDone(t, s, chestSOP), chestSOP)
	srSer, _ := srSeries(t, s, chestStudy)
	sr := wadoInstance(t, s, chestStudy, srSer, res.SRSOPInstanceUID)
	if !bytes.Contains(sr, []byte(res.Label)) {
		t.Errorf("SR lacks the label %s", res.Label)
	}
	inst := qido(t, s, "/instances?PatientID="+pid)
	if len(inst) != 2 { // the radiograph and its SR, by blind index
		t.Fatalf("QIDO by Patient ID finds %d instances, want 2", len(inst))
	}
	meta, off, err := dimse.ReadFileMeta(bytes.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	got := wadoInstance(t, s, chestStudy, inst[0]["0020000E"].Value[0].(string), chestSOP)
	if !bytes.HasSuffix(got, sent[off:]) || meta.MediaStorageSOPInstanceUID != chestSOP {
		t.Errorf("WADO-RS bytes (%d) do not end with the sent data set (%d)", len(got), len(sent)-int(off))
	}
	for _, r := range []string{"study:read", "result:read"} {
		rec := lastRecord(t, s, func(x audit.Record) bool { return x.Action == r && len(x.Roles) == 1 && x.Roles[0] == "radiologist" })
		if rec.Outcome != audit.OutcomeSuccess || rec.PolicyDecisionID == "" || (r == "result:read" && rec.Resource.StudyInstanceUID != chestStudy) {
			t.Errorf("%s record: %+v", r, rec)
		}
	}
	if rec := lastRecord(t, s, func(x audit.Record) bool { return x.Detail["operation"] == "wado" }); rec.Resource.StudyInstanceUID != chestStudy ||
		rec.Resource.SOPInstanceUID != chestSOP {
		t.Errorf("WADO record: %+v", rec)
	}
	stopService(t, s)

	needles := [][]byte{[]byte(pid), []byte(name), []byte(strings.ToUpper(name)), []byte(strings.ToLower(name)),
		[]byte("Zyxwvut"), []byte(birth)}
	n := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, nd := range needles {
			if bytes.Contains(b, nd) {
				t.Errorf("%s contains %q in plain text", p, nd)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("scanned only %d files", n)
	}
}

// TestHealthzNeedsNothing: liveness works without the token store's
// help, and answers the same to anyone.
func TestHealthzNeedsNothing(t *testing.T) {
	s := startNoWorkers(t, nil)
	before := len(records(t, s))
	for range 3 {
		if code, _, _ := do(t, "GET", base(s)+"/healthz", "", nil, nil); code != 200 {
			t.Fatalf("/healthz: %d", code)
		}
	}
	if after := len(records(t, s)); after != before {
		t.Errorf("/healthz wrote %d audit records", after-before)
	}
}
