package service

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radflow/radflow/internal/api"
	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/dicomweb"
	"github.com/radflow/radflow/internal/dimse"
	"github.com/radflow/radflow/internal/pipeline"
)

// checkResult asserts a finished chest radiograph result.
func checkResult(t *testing.T, rs []api.Result, sop string) api.Result {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("%d results for %s, want exactly 1: %+v", len(rs), sop, rs)
	}
	r := rs[0]
	if r.Status != api.StatusDone {
		t.Fatalf("result %s: status %s, error %q", sop, r.Status, r.Error)
	}
	if r.Model != "chest-xray-pneumonia" || r.Version != "1" {
		t.Errorf("model %s@%s", r.Model, r.Version)
	}
	if r.Label != "NORMAL" && r.Label != "PNEUMONIA" {
		t.Errorf("label %q", r.Label)
	}
	sum := 0.0
	for _, l := range []string{"NORMAL", "PNEUMONIA"} {
		p, ok := r.Probabilities[l]
		if !ok || p < 0 || p > 1 {
			t.Errorf("probability of %s: %v (present %v)", l, p, ok)
		}
		sum += p
	}
	if len(r.Probabilities) != 2 || math.Abs(sum-1) > 1e-5 {
		t.Errorf("probabilities %v sum to %v, want 1", r.Probabilities, sum)
	}
	// The decision follows the config: PNEUMONIA iff P(PNEUMONIA) >= 0.44.
	if want := r.Probabilities["PNEUMONIA"] >= 0.44; (r.Label == "PNEUMONIA") != want {
		t.Errorf("label %s with P(PNEUMONIA)=%v and threshold 0.44", r.Label, r.Probabilities["PNEUMONIA"])
	}
	if r.SRSOPInstanceUID != pipeline.SRInstanceUID(sop, r.Model, r.Version) {
		t.Errorf("SR SOP Instance UID %q, want the deterministic %q", r.SRSOPInstanceUID, pipeline.SRInstanceUID(sop, r.Model, r.Version))
	}
	for _, k := range []string{"decode", "preprocess", "inference", "sr"} {
		if r.TimingsMS[k] <= 0 {
			t.Errorf("timing %s = %v ms", k, r.TimingsMS[k])
		}
	}
	return r
}

// srSeries finds the SR series of a study by QIDO and returns its Series
// Instance UID and number of instances.
func srSeries(t *testing.T, s *Service, study string) (string, int) {
	t.Helper()
	uid, n := "", 0
	for _, row := range qido(t, s, "/studies/"+study+"/series") {
		if m := row["00080060"].Value; len(m) == 1 && m[0] == "SR" {
			if uid != "" {
				t.Fatalf("two SR series in study %s", study)
			}
			uid = row["0020000E"].Value[0].(string)
			n = int(row["00201209"].Value[0].(float64))
		}
	}
	if uid == "" {
		t.Fatalf("no SR series in study %s", study)
	}
	return uid, n
}

// TestDIMSEToResultSRRestartAndDuplicates: storescu the chest radiograph,
// get its result and SR (QIDO, WADO-RS, dciodvfy), restart on the same data
// directory, then send it again over DIMSE and STOW-RS: still one result
// and one SR.
func TestDIMSEToResultSRRestartAndDuplicates(t *testing.T) {
	repo := testRepo(t)
	chest := sharedPath(t, chestName)
	dir := t.TempDir()
	s := startService(t, dir, repo, nil)

	if out, err := storescu(t, s.DICOMAddr(), chest); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	r := checkResult(t, waitDone(t, s, chestSOP), chestSOP)
	// Its blob was written while the data set arrived.
	wantMetrics(t, s, `radflow_cstore_blob_writes_total{path="while_receiving"} 1`)
	srSer, n := srSeries(t, s, chestStudy)
	if n != 1 {
		t.Errorf("SR series has %d instances, want 1", n)
	}
	sr := wadoInstance(t, s, chestStudy, srSer, r.SRSOPInstanceUID)
	for _, e := range dciodvfyErrors(t, sr) {
		t.Errorf("dciodvfy: %s", e)
	}
	in, err := dicom.ParseBytes(sr)
	if err != nil {
		t.Fatal(err)
	}
	if in.SOPClassUID() != "1.2.840.10008.5.1.4.1.1.88.33" || in.SOPInstanceUID() != r.SRSOPInstanceUID ||
		in.StudyInstanceUID() != chestStudy || in.Modality() != "SR" {
		t.Errorf("SR: class %s instance %s study %s modality %s", in.SOPClassUID(), in.SOPInstanceUID(), in.StudyInstanceUID(), in.Modality())
	}
	// The SR's text carries the decided label.
	if !bytes.Contains(sr, []byte(r.Label)) {
		t.Errorf("SR does not contain the label %q", r.Label)
	}

	// Restart on the same data directory.
	stopService(t, s)
	s = startService(t, dir, repo, nil)
	if got := listResults(t, s, chestSOP); len(got) != 1 || got[0].Status != api.StatusDone || got[0].SRSOPInstanceUID != r.SRSOPInstanceUID ||
		got[0].Probabilities["PNEUMONIA"] != r.Probabilities["PNEUMONIA"] {
		t.Fatalf("after restart: %+v", got)
	}
	studies := qido(t, s, "/studies?StudyInstanceUID="+chestStudy)
	if len(studies) != 1 || studies[0]["00201208"].Value[0].(float64) != 2 {
		t.Fatalf("after restart, QIDO study: %+v (want 2 instances: image and SR)", studies)
	}

	// The same instance again, by DIMSE and by STOW-RS.
	rows0, blobs0 := counts(t, s)
	if out, err := storescu(t, s.DICOMAddr(), chest); err != nil {
		t.Fatalf("storescu again: %v\n%s", err, out)
	}
	cl := webClient(s)
	resp, err := cl.StoreFiles(context.Background(), "", chest)
	if err != nil || resp.HTTPStatus != 200 || len(resp.Referenced) != 1 {
		t.Fatalf("STOW again: %+v %v", resp, err)
	}
	// Already stored: not started early, answered by the usual path.
	wantMetrics(t, s, `radflow_cstore_blob_writes_total{path="after_receiving"} 1`)
	if rows, blobs := counts(t, s); rows != rows0 || blobs != blobs0 || rows != 2 {
		t.Errorf("re-sent instance changed the store: rows %d→%d, blobs %d→%d", rows0, rows, blobs0, blobs)
	}
	if got := waitDone(t, s, chestSOP); len(got) != 1 {
		t.Errorf("%d results after re-sending", len(got))
	}
	if _, n := srSeries(t, s, chestStudy); n != 1 {
		t.Errorf("%d SRs after re-sending, want 1", n)
	}
}

// stowBody builds a multipart/related body of application/dicom parts.
func stowBody(parts ...[]byte) (body []byte, contentType string) {
	var b bytes.Buffer
	const boundary = "radflow-test-boundary"
	for _, p := range parts {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/dicom\r\n\r\n", boundary)
		b.Write(p)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes(), `multipart/related; type="application/dicom"; boundary=` + boundary
}

// curlSTOW posts a body with curl and returns the HTTP status and the
// response body.
func curlSTOW(t *testing.T, s *Service, url string, body []byte, ctype string) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	path := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "-H", "Authorization: "+authHeader(s).Get("Authorization"),
		"-H", "Content-Type: "+ctype, "-H", "Accept: application/dicom+json", "--data-binary", "@"+path, url).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	txt := string(out)
	i := strings.LastIndexByte(txt, '\n')
	var code int
	fmt.Sscan(txt[i+1:], &code)
	return code, txt[:i]
}

// TestSTOWToResult: a chest radiograph (UID-rewritten copies) by curl and
// by dicomweb.Client reaches a result and an SR.
func TestSTOWToResult(t *testing.T) {
	repo := testRepo(t)
	raw := readShared(t, chestName)
	s := startService(t, t.TempDir(), repo, nil)

	a, b := withUID(t, raw, chestSOP, 1), withUID(t, raw, chestSOP, 2)
	body, ctype := stowBody(a)
	code, resp := curlSTOW(t, s, base(s)+"/dicomweb/studies", body, ctype)
	if code != 200 || !strings.Contains(resp, uidWith(chestSOP, 1)) {
		t.Fatalf("curl STOW: %d %s", code, resp)
	}
	cl := webClient(s)
	sr, err := cl.Store(context.Background(), chestStudy, bytes.NewReader(b))
	if err != nil || sr.HTTPStatus != 200 || len(sr.Referenced) != 1 || sr.Referenced[0].SOPInstanceUID != uidWith(chestSOP, 2) {
		t.Fatalf("client STOW: %+v %v", sr, err)
	}
	if !strings.Contains(sr.Referenced[0].RetrieveURL, "/dicomweb/studies/"+chestStudy+"/series/") {
		t.Errorf("RetrieveURL %q", sr.Referenced[0].RetrieveURL)
	}
	for _, uid := range []string{uidWith(chestSOP, 1), uidWith(chestSOP, 2)} {
		checkResult(t, waitDone(t, s, uid), uid)
	}
	if _, n := srSeries(t, s, chestStudy); n != 2 {
		t.Errorf("SR series has %d instances, want 2", n)
	}
}

// TestRejectsBadInputStoringNothing: malformed STOW parts, truncated files,
// non-DICOM bytes, a study mismatch, an unknown SOP class by storescu, a
// command/data set UID mismatch and a truncated data set by C-STORE get
// their statuses, and nothing is stored half-way.
func TestRejectsBadInputStoringNothing(t *testing.T) {
	repo := testRepo(t)
	ct := readShared(t, ctName)
	s := startService(t, t.TempDir(), repo, nil)
	ctx := context.Background()
	cl := webClient(s)
	notDICOM := []byte("this is not a DICOM file, just some text long enough to be read as one")
	truncated := ct[:len(ct)/2]

	// All parts bad: 409 with reason C000 for each.
	resp, err := cl.Store(ctx, "", bytes.NewReader(notDICOM), bytes.NewReader(truncated))
	if err != nil || resp.HTTPStatus != 409 || len(resp.Failed) != 2 || len(resp.Referenced) != 0 {
		t.Fatalf("bad parts: %+v %v", resp, err)
	}
	for _, f := range resp.Failed {
		if f.FailureReason != dicomweb.FailureCannotUnderstand {
			t.Errorf("failure reason %#x, want C000", f.FailureReason)
		}
	}
	// Study mismatch: C122.
	resp, err = cl.Store(ctx, "1.2.3.4", bytes.NewReader(ct))
	if err != nil || resp.HTTPStatus != 409 || len(resp.Failed) != 1 || resp.Failed[0].FailureReason != dicomweb.FailureStudyMismatch ||
		resp.Failed[0].SOPInstanceUID != ctSOP {
		t.Fatalf("study mismatch: %+v %v", resp, err)
	}
	// Malformed multipart (no boundary): 400 by curl.
	if code, _ := curlSTOW(t, s, base(s)+"/dicomweb/studies", []byte("garbage"), `multipart/related; type="application/dicom"`); code != 400 {
		t.Errorf("multipart without boundary: HTTP %d, want 400", code)
	}
	if rows, blobs := counts(t, s); rows != 0 || blobs != 0 {
		t.Fatalf("after rejected STOW: %d rows, %d blobs", rows, blobs)
	}

	// Unknown SOP class by storescu: the presentation context is rejected.
	odd := filepath.Join(t.TempDir(), "odd.dcm")
	b := bytes.ReplaceAll(ct, []byte("1.2.840.10008.5.1.4.1.1.2\x00"), []byte("1.2.840.99999.1.2.3.4.5\x00\x00\x00"))
	if bytes.Equal(b, ct) {
		t.Fatal("CT SOP Class UID not found")
	}
	if err := os.WriteFile(odd, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := storescu(t, s.DICOMAddr(), odd); err == nil && !strings.Contains(out, "No presentation context") {
		t.Errorf("storescu of an unknown SOP class succeeded:\n%s", out)
	}

	// C-STORE with the Go SCU: command/data set mismatch (A900), a
	// truncated data set (C000), then a good instance (0000).
	meta, off, err := dimse.ReadFileMeta(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	ds := ct[off:]
	scu, err := dimse.Dial(ctx, s.DICOMAddr(), dimse.ClientConfig{CalledAETitle: "RADFLOW"},
		[]dimse.PresentationContext{{AbstractSyntax: meta.MediaStorageSOPClassUID, TransferSyntaxes: []string{meta.TransferSyntaxUID}}})
	if err != nil {
		t.Fatal(err)
	}
	defer scu.Release(ctx)
	for _, c := range []struct {
		name string
		sop  string
		data []byte
		want uint16
	}{
		{"UID mismatch", "1.2.3.4.5.6", ds, 0xA900},
		{"truncated", ctSOP, ds[:len(ds)/3], 0xC000},
	} {
		st, err := scu.Store(ctx, meta.MediaStorageSOPClassUID, c.sop, meta.TransferSyntaxUID, bytes.NewReader(c.data), int64(len(c.data)))
		if err != nil || st != c.want {
			t.Errorf("%s: status %#04x, %v; want %#04x", c.name, st, err, c.want)
		}
	}
	if rows, blobs := counts(t, s); rows != 0 || blobs != 0 {
		t.Fatalf("after rejected C-STOREs: %d rows, %d blobs", rows, blobs)
	}
	// The CT is stored, with no job (no model accepts CT) and no result.
	st, err := scu.Store(ctx, meta.MediaStorageSOPClassUID, ctSOP, meta.TransferSyntaxUID, bytes.NewReader(ds), int64(len(ds)))
	if err != nil || st != 0 {
		t.Fatalf("CT: status %#04x, %v", st, err)
	}
	if rows, blobs := counts(t, s); rows != 1 || blobs != 1 {
		t.Fatalf("after the CT: %d rows, %d blobs", rows, blobs)
	}
	if rs := listResults(t, s, ctSOP); len(rs) != 0 {
		t.Errorf("CT has results: %+v", rs)
	}
	if d, err := s.queue.Depth(ctx); err != nil || d != 0 {
		t.Errorf("queue depth %d (%v) after a CT", d, err)
	}
	var jobs int
	s.Store().ReadDB().QueryRow(`SELECT count(*) FROM river_job`).Scan(&jobs)
	if jobs != 0 {
		t.Errorf("%d jobs after a CT, want 0", jobs)
	}
	inst := qido(t, s, "/instances?SOPInstanceUID="+ctSOP)
	if len(inst) != 1 {
		t.Errorf("QIDO finds %d CT instances", len(inst))
	}
	// WADO-RS returns exactly the stored bytes (with the file meta the
	// service added, data set unchanged).
	series := inst[0]["0020000E"].Value[0].(string)
	got := wadoInstance(t, s, ctStudy, series, ctSOP)
	if !bytes.HasSuffix(got, ds) {
		t.Errorf("WADO-RS bytes (%d) do not end with the sent data set (%d)", len(got), len(ds))
	}
}

// TestReadyzAndMetrics: readiness names its checks; metrics count ingests
// and stages.
func TestReadyzAndMetrics(t *testing.T) {
	repo := testRepo(t)
	s := startService(t, t.TempDir(), repo, nil)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if code := getJSON(t, s, base(s)+"/readyz", &ready); code != 200 || ready.Status != "ready" || len(ready.Checks) != 6 || ready.Checks["audit"] != "ok" || ready.Checks["ingest"] != "ok" {
		t.Fatalf("readyz: %d %+v", code, ready)
	}
	if out, err := storescu(t, s.DICOMAddr(), sharedPath(t, chestName)); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	waitDone(t, s, chestSOP)
	wantMetrics(t, s,
		`radflow_ingest_instances_total{outcome="stored",source="dimse"} 1`,
		`radflow_stage_duration_seconds_count{stage="inference"} 1`,
		`radflow_stage_duration_seconds_count{stage="sr"} 1`,
	)
}

// wantMetrics fails the test for each line /metrics lacks.
func wantMetrics(t *testing.T, s *Service, lines ...string) {
	t.Helper()
	resp := get(t, base(s)+"/metrics", authHeader(s))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range lines {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
