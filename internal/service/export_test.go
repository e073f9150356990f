package service

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/auth"
	"github.com/radflow/radflow/internal/dcmtktest"
	"github.com/radflow/radflow/internal/export"
)

// dataSetOf returns the data set of a Part 10 file (after the preamble,
// DICM and the explicit VR little endian file meta group).
func dataSetOf(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		t.Fatalf("not a Part 10 file (%d bytes)", len(b))
	}
	i := 132
	for i+8 <= len(b) && binary.LittleEndian.Uint16(b[i:]) == 0x0002 {
		vr := string(b[i+4 : i+6])
		switch vr {
		case "OB", "OW", "OF", "OD", "OL", "OV", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
			i += 12 + int(binary.LittleEndian.Uint32(b[i+8:]))
		default:
			i += 8 + int(binary.LittleEndian.Uint16(b[i+6:]))
		}
	}
	if i > len(b) {
		t.Fatal("file meta longer than the file")
	}
	return b[i:]
}

// writeDestinations writes a destinations file and loads it.
func writeDestinations(t *testing.T, yaml string) *export.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "destinations.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := export.LoadConfig(p)
	if err != nil {
		t.Fatalf("LoadConfig: %v\n%s", err, yaml)
	}
	return cfg
}

// projectSecret writes a de-identification project secret file.
func projectSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "project.secret")
	if err := os.WriteFile(p, []byte("radflow-export-e2e-project-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// postExport sends POST /api/v1/exports as token and decodes a Result
// (also in the {error, result} bodies).
func postExport(t *testing.T, s *Service, token string, body map[string]any) (int, *export.Result, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	code, _, out := do(t, "POST", base(s)+"/api/v1/exports", token, b, map[string]string{"Content-Type": "application/json"})
	var res export.Result
	if code == 200 {
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("POST /api/v1/exports: %v: %s", err, out)
		}
		return code, &res, out
	}
	return code, nil, out
}

// TestExportEndToEnd: radflow serve with a destinations file naming two
// dcmtk storescp +B: "pacs" (internal, auto: [sr]) and "research"
// (external, de-identified). storescu sends the NIH chest radiograph; its
// result SR reaches pacs by itself, byte for byte the stored data set. A
// radiologist exports the study with its SR to research: both instances
// arrive de-identified (no Patient's Name/ID bytes, none of the original
// UIDs, the UIDs the result reports, Pixel Data unchanged), each with an
// export audit record. A technologist, and the admin of
// RADFLOW_ADMIN_TOKEN, get 403 with a denied record.
func TestExportEndToEnd(t *testing.T) {
	repo := testRepo(t)
	chest := sharedPath(t, chestName)
	orig := readShared(t, chestName)
	pacs := dcmtktest.StartStoreSCP(t, "PACS")
	research := dcmtktest.StartStoreSCP(t, "RESEARCH")
	dests := writeDestinations(t, fmt.Sprintf(`destinations:
  - name: pacs
    ae_title: PACS
    address: %q
    auto: [sr]
    retry: {attempts: 3, backoff: 50ms}
  - name: research
    ae_title: RESEARCH
    address: %q
    external: true
    deid:
      project_secret_file: %q
`, pacs.Addr, research.Addr, projectSecret(t)))
	const adminToken = "rfa_export-e2e-admin-token-0123456789abcdef"
	s := startService(t, t.TempDir(), repo, func(c *Config) {
		c.Destinations = dests
		c.Security.AdminToken = adminToken
	})
	radiologist := newToken(t, s, "", auth.RoleRadiologist)
	technologist := newToken(t, s, "", auth.RoleTechnologist)

	// Destinations are listed without addresses or secrets.
	code, _, body := do(t, "GET", base(s)+"/api/v1/destinations", radiologist, nil, nil)
	if code != 200 || strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "secret") {
		t.Fatalf("GET /api/v1/destinations: HTTP %d %s", code, body)
	}
	var infos []export.DestinationInfo
	if err := json.Unmarshal(body, &infos); err != nil || len(infos) != 2 || infos[0].Name != "pacs" || infos[0].External ||
		len(infos[0].Auto) != 1 || infos[1].Name != "research" || !infos[1].External {
		t.Fatalf("destinations %+v (%v)", infos, err)
	}

	if out, err := storescu(t, s.DICOMAddr(), chest); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	r := checkResult(t, waitDone(t, s, chestSOP), chestSOP)

	// Auto-push: the result SR reaches pacs unchanged, audited as the system.
	got := pacs.WaitFiles(t, 1)
	if len(got) != 1 {
		t.Fatalf("pacs received %d files, want only the result SR", len(got))
	}
	series, _ := srSeries(t, s, chestStudy)
	stored := dataSetOf(t, wadoInstance(t, s, chestStudy, series, r.SRSOPInstanceUID))
	for name, b := range got {
		if !bytes.Contains(b, []byte(r.SRSOPInstanceUID)) {
			t.Errorf("pacs file %s is not the result SR %s", name, r.SRSOPInstanceUID)
		}
		if !bytes.Equal(dataSetOf(t, b), stored) {
			t.Errorf("auto-pushed SR data set differs from the stored one (%d vs %d bytes)", len(dataSetOf(t, b)), len(stored))
		}
	}
	// The audit record is appended right after the C-STORE-RSP.
	var auto audit.Record
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var ok bool
		for _, rec := range records(t, s) {
			if rec.Action == "export" && rec.Detail["operation"] == "auto_export" {
				auto, ok = rec, true
			}
		}
		if ok || time.Now().After(deadline) {
			break
		}
	}
	if auto.Resource.SOPInstanceUID != r.SRSOPInstanceUID || auto.Resource.StudyInstanceUID != chestStudy ||
		auto.SubjectID != "radflow" || auto.SubjectKind != audit.KindSystem || auto.Outcome != audit.OutcomeSuccess ||
		auto.Detail["called_ae"] != "PACS" || auto.Detail["dimse_status"] != "0000" {
		t.Errorf("auto-push audit record %+v", auto)
	}

	// A radiologist exports the study with its SR to the external destination.
	code, res, body := postExport(t, s, radiologist, map[string]any{"destination": "research", "study_instance_uid": chestStudy, "include_sr": true})
	if code != 200 {
		t.Fatalf("export as radiologist: HTTP %d %s", code, body)
	}
	if !res.External || res.Sent != 2 || res.Failed != 0 || res.Associations != 1 || len(res.Outcomes) != 2 {
		t.Fatalf("export result %s", body)
	}
	sent := map[string]string{} // original SOP → sent SOP
	for _, o := range res.Outcomes {
		if o.Status != export.StatusSent || o.DIMSEStatus != "0000" || o.SentSOPInstanceUID == "" ||
			o.SentSOPInstanceUID == o.SOPInstanceUID || o.SentStudyInstanceUID == chestStudy || o.SentStudyInstanceUID == "" {
			t.Errorf("outcome %+v", o)
		}
		sent[o.SOPInstanceUID] = o.SentSOPInstanceUID
	}
	if sent[chestSOP] == "" || sent[r.SRSOPInstanceUID] == "" {
		t.Fatalf("outcomes %+v do not cover the radiograph and its SR", res.Outcomes)
	}
	files := research.WaitFiles(t, 2)
	if len(files) != 2 {
		t.Fatalf("research received %d files, want 2", len(files))
	}
	pixels := orig[len(orig)-1048576:] // Pixel Data, the last element
	matched := map[string]bool{}
	for name, b := range files {
		for _, leak := range []string{"Covid0000", chestSOP, chestStudy, r.SRSOPInstanceUID} {
			if bytes.Contains(b, []byte(leak)) {
				t.Errorf("research file %s contains original identifier %q", name, leak)
			}
		}
		for o, snt := range sent {
			// storescp names each file after its SOP Instance UID.
			if strings.HasSuffix(name, "."+snt) || strings.HasSuffix(name, snt) && bytes.Contains(b, []byte(snt)) {
				matched[o] = true
				if o == chestSOP && !bytes.HasSuffix(b, pixels) {
					t.Errorf("de-identified radiograph %s: Pixel Data changed", name)
				}
			}
		}
	}
	if len(matched) != 2 {
		t.Errorf("sent SOP Instance UIDs %v found in %d of the received files", sent, len(matched))
	}
	n := 0
	for _, rec := range records(t, s) {
		if rec.Action == "export" && rec.Detail["operation"] == "export" && rec.Outcome == audit.OutcomeSuccess &&
			rec.Detail["called_ae"] == "RESEARCH" && rec.Resource.StudyInstanceUID == chestStudy &&
			sent[rec.Resource.SOPInstanceUID] != "" && rec.SubjectKind == audit.KindService && rec.Detail["auth_method"] == "token" &&
			rec.PolicyDecisionID != "" && len(rec.Roles) == 1 && rec.Roles[0] == auth.RoleRadiologist {
			n++
		}
	}
	if n != 2 {
		for _, rec := range records(t, s) {
			if rec.Action == "export" {
				t.Logf("%+v", rec)
			}
		}
		t.Errorf("%d export audit records for the 2 instances sent", n)
	}

	// A technologist and the admin may not export: 403, a denied record, nothing sent.
	for _, tok := range []string{technologist, adminToken} {
		before := len(records(t, s))
		code, _, body = postExport(t, s, tok, map[string]any{"destination": "research", "study_instance_uid": chestStudy})
		if code != 403 {
			t.Fatalf("export: HTTP %d %s, want 403", code, body)
		}
		rs := records(t, s)
		if len(rs) != before+1 {
			t.Fatalf("%d new audit records for a refused export, want 1", len(rs)-before)
		}
		if d := rs[len(rs)-1]; d.Action != "export" || d.Outcome != audit.OutcomeDenied || d.Detail["http_status"] != "403" ||
			d.Detail["reason"] != "policy_denied" || d.Detail["route"] != "POST /api/v1/exports" {
			t.Errorf("refused export record %+v", d)
		}
	}
	if got := len(research.Files(t)); got != 2 {
		t.Errorf("research has %d files after refused exports, want 2", got)
	}
}

// orgPolicy allows storing, and export when the route carries no study
// (the Guard's decision) or when the study belongs to the subject's
// organisation; deid only for radiologists.
const orgPolicy = `package radflow.authz

default allow := false

allow if input.action == "instance:store"

allow if {
	input.action == "export"
	input.resource.study_instance_uid == ""
}

allow if {
	input.action == "export"
	input.resource.organisation != ""
	input.resource.organisation == input.subject.organisation
}

allow if {
	input.action == "deid"
	"radiologist" in input.subject.roles
}

decision := {"allow": allow, "break_glass": false, "reasons": ["org test policy"]}
`

// TestExportPerStudyAuthorization: with a policy that scopes export to the
// study's owning organisation (study_owners) and reserves deid to
// radiologists, the per-study check of POST /api/v1/exports refuses
// another organisation (denied export record) and an external destination
// without deid (denied deid record), and allows the rest.
func TestExportPerStudyAuthorization(t *testing.T) {
	ct := readShared(t, ctName)
	scp := dcmtktest.StartStoreSCP(t, "PACS")
	dests := writeDestinations(t, fmt.Sprintf(`destinations:
  - name: pacs
    ae_title: PACS
    address: %q
  - name: research
    ae_title: PACS
    address: %q
    external: true
    deid: {project_secret_file: %q}
`, scp.Addr, scp.Addr, projectSecret(t)))
	pdir := t.TempDir()
	if err := os.WriteFile(filepath.Join(pdir, "authz.rego"), []byte(orgPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startNoWorkers(t, func(c *Config) {
		c.Destinations = dests
		c.Security.PolicyDir = pdir
	})
	store := newToken(t, s, "hospital-a", auth.RoleTechnologist)
	if code := stowAs(t, s, store, ct); code != 200 {
		t.Fatalf("STOW-RS: HTTP %d", code)
	}
	radA := newToken(t, s, "hospital-a", auth.RoleRadiologist)
	refA := newToken(t, s, "hospital-a", auth.RoleReferringPhysician)
	radB := newToken(t, s, "hospital-b", auth.RoleRadiologist)

	cases := []struct {
		name, token, dest string
		code              int
		deniedAction      string
	}{
		{"other organisation", radB, "pacs", 403, "export"},
		{"external without deid", refA, "research", 403, "deid"},
		{"own organisation, internal", refA, "pacs", 200, ""},
		{"own organisation, external with deid", radA, "research", 200, ""},
	}
	for _, c := range cases {
		before := len(records(t, s))
		code, res, body := postExport(t, s, c.token, map[string]any{"destination": c.dest, "sop_instance_uids": []string{ctSOP}})
		if code != c.code {
			t.Fatalf("%s: HTTP %d %s, want %d", c.name, code, body, c.code)
		}
		rs := records(t, s)[before:]
		if c.code == 403 {
			// The Guard's route record (allowed: no study), then the per-study denial.
			if len(rs) != 2 || rs[0].Outcome != audit.OutcomeSuccess {
				t.Fatalf("%s: records %+v", c.name, rs)
			}
			d := rs[1]
			if d.Action != c.deniedAction || d.Outcome != audit.OutcomeDenied || d.Resource.StudyInstanceUID != ctStudy ||
				d.Detail["http_status"] != "403" || d.Detail["called_ae"] != "PACS" || d.PolicyDecisionID == "" || d.RequestID != rs[0].RequestID {
				t.Errorf("%s: denied record %+v", c.name, d)
			}
			continue
		}
		if res.Sent != 1 || res.Outcomes[0].SOPInstanceUID != ctSOP {
			t.Errorf("%s: result %s", c.name, body)
		}
		last := rs[len(rs)-1]
		if last.Action != "export" || last.Resource.SOPInstanceUID != ctSOP || last.Organisation != "hospital-a" || last.Outcome != audit.OutcomeSuccess {
			t.Errorf("%s: export record %+v", c.name, last)
		}
	}
	if n := len(scp.Files(t)); n != 2 {
		t.Errorf("destination received %d files, want 2 (one per allowed export)", n)
	}
}

// TestExportsDisabled: without a destinations file the routes exist but
// export nothing: the list is empty and any destination is unknown (404).
func TestExportsDisabled(t *testing.T) {
	s := startNoWorkers(t, nil)
	rad := newToken(t, s, "", auth.RoleRadiologist)
	code, _, body := do(t, "GET", base(s)+"/api/v1/destinations", rad, nil, nil)
	if code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("GET /api/v1/destinations: HTTP %d %s, want 200 []", code, body)
	}
	code, _, body = postExport(t, s, rad, map[string]any{"destination": "pacs", "study_instance_uid": ctStudy})
	if code != 404 || !strings.Contains(string(body), "unknown destination") {
		t.Errorf("POST /api/v1/exports: HTTP %d %s, want 404 unknown destination", code, body)
	}
	if d, auto := s.Destinations(); len(d) != 0 || auto {
		t.Errorf("Destinations() = %v, %v", d, auto)
	}
}

// TestWorkerAutoPush: `radflow serve --workers 0` ingests, a `radflow
// worker` (no listeners) on the same data directory runs the job and
// auto-pushes the result SR to the auto: [sr] destination, auditing it in
// its own trail (WorkerAuditDir), which verifies with the data
// directory's audit key.
func TestWorkerAutoPush(t *testing.T) {
	repo := testRepo(t)
	chest := sharedPath(t, chestName)
	pacs := dcmtktest.StartStoreSCP(t, "PACS")
	dests := writeDestinations(t, fmt.Sprintf("destinations:\n  - name: pacs\n    ae_title: PACS\n    address: %q\n    auto: [sr]\n", pacs.Addr))
	dir := t.TempDir()
	s := startService(t, dir, repo, func(c *Config) { c.Workers = 0 })
	w, err := New(context.Background(), Config{DataDir: dir, Workers: 1, Models: repo, Destinations: dests, OrphanAge: -1,
		Logger: slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopService(t, w) })
	if d, auto := w.Destinations(); len(d) != 1 || !auto {
		t.Fatalf("worker Destinations() = %v, %v", d, auto)
	}
	if d, auto := s.Destinations(); len(d) != 0 || auto {
		t.Fatalf("serve without --destinations: Destinations() = %v, %v", d, auto)
	}
	if out, err := storescu(t, s.DICOMAddr(), chest); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	r := checkResult(t, waitDone(t, s, chestSOP), chestSOP)
	for name := range pacs.WaitFiles(t, 1) {
		if !strings.HasSuffix(name, r.SRSOPInstanceUID) {
			t.Errorf("pacs received %s, want the result SR %s", name, r.SRSOPInstanceUID)
		}
	}
	stopService(t, w) // closes the worker trail after the push
	_, keyFile := audit.Paths(dir)
	key, err := audit.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if w.Trail() != nil {
		t.Error("a worker has no request trail")
	}
	var recs []audit.Record
	if _, err := audit.Scan(WorkerAuditDir(dir), key, func(r audit.Record) error {
		if r.Action != audit.ActionAuditStarted { // one per start of the trail
			recs = append(recs, r)
		}
		return nil
	}); err != nil {
		t.Fatalf("worker audit trail: %v", err)
	}
	if len(recs) != 1 || recs[0].Action != "export" || recs[0].Detail["operation"] != "auto_export" ||
		recs[0].Resource.SOPInstanceUID != r.SRSOPInstanceUID || recs[0].Outcome != audit.OutcomeSuccess {
		t.Errorf("worker audit records %+v, want one auto_export of the SR", recs)
	}
}
