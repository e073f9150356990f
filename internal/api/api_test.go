package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/dicomweb"
)

type fakeResults struct{ got ResultFilter }

func (f *fakeResults) ListResults(ctx context.Context, flt ResultFilter) ([]Result, error) {
	f.got = flt
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []Result{{SOPInstanceUID: "1.2.3.4", StudyInstanceUID: "1.2.3", Model: "chest-xray-pneumonia", Version: "1.0.0",
		Status: StatusDone, Label: "PNEUMONIA", Probabilities: map[string]float64{"NORMAL": 0.25, "PNEUMONIA": 0.75},
		SRSOPInstanceUID: "1.2.3.5", TimingsMS: map[string]float64{"inference": 12.5}, CreatedAt: t0, UpdatedAt: t0.Add(time.Second)}}, nil
}

type fakeModels struct{}

func (fakeModels) ListModels(context.Context) ([]Model, error) {
	return []Model{{Name: "chest-xray-pneumonia", Version: "1.0.0", Labels: []string{"NORMAL", "PNEUMONIA"}}}, nil
}

// emptyCatalog answers every query with no rows.
type emptyCatalog struct{ lastQuery dicomweb.Query }

func (c *emptyCatalog) SearchStudies(ctx context.Context, q dicomweb.Query) ([]dicomweb.StudyRow, error) {
	c.lastQuery = q
	return nil, nil
}
func (c *emptyCatalog) SearchSeries(context.Context, dicomweb.Query) ([]dicomweb.SeriesRow, error) {
	return nil, nil
}
func (c *emptyCatalog) SearchInstances(context.Context, dicomweb.Query) ([]dicomweb.InstanceRow, error) {
	return nil, nil
}
func (c *emptyCatalog) Instance(context.Context, string) (dicomweb.InstanceRow, error) {
	return dicomweb.InstanceRow{}, dicomweb.ErrNotFound
}
func (c *emptyCatalog) OpenInstance(context.Context, string) (io.ReadCloser, error) {
	return nil, dicomweb.ErrNotFound
}

// recordingGuard denies the actions in deny and records every call.
type recordingGuard struct {
	mu    sync.Mutex
	calls []string
	deny  map[string]error
}

func (g *recordingGuard) Authorize(r *http.Request, action, resource string) (Principal, error) {
	g.mu.Lock()
	g.calls = append(g.calls, action+" "+resource)
	g.mu.Unlock()
	if err := g.deny[action]; err != nil {
		return Principal{}, err
	}
	return Principal{Subject: "alice"}, nil
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newServer(t *testing.T, cfg Config) (*httptest.Server, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	if cfg.Routes == nil {
		dw, err := dicomweb.New(dicomweb.Config{Catalog: &emptyCatalog{}, Logger: cfg.Logger})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Routes = FromDICOMweb(dw.Routes())
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, logs
}

func getBody(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestResults(t *testing.T) {
	fr := &fakeResults{}
	srv, _ := newServer(t, Config{Results: fr})
	resp, body := getBody(t, srv.URL+"/api/v1/results?study=1.2.3")
	if resp.StatusCode != 200 || fr.got.StudyInstanceUID != "1.2.3" {
		t.Fatalf("%d %s %+v", resp.StatusCode, body, fr.got)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 {
		t.Fatal(err, body)
	}
	r := got[0]
	for k, want := range map[string]any{"sop_instance_uid": "1.2.3.4", "study_instance_uid": "1.2.3", "model": "chest-xray-pneumonia",
		"version": "1.0.0", "status": "done", "label": "PNEUMONIA", "sr_sop_instance_uid": "1.2.3.5", "created_at": "2026-01-02T03:04:05Z"} {
		if r[k] != want {
			t.Errorf("%s = %v, want %v", k, r[k], want)
		}
	}
	if p := r["probabilities"].(map[string]any); p["PNEUMONIA"] != 0.75 {
		t.Errorf("probabilities %v", p)
	}
	if tm := r["timings_ms"].(map[string]any); tm["inference"] != 12.5 {
		t.Errorf("timings %v", tm)
	}
	if resp, _ := getBody(t, srv.URL+"/api/v1/results?instance=1.2.3.4"); resp.StatusCode != 200 || fr.got.SOPInstanceUID != "1.2.3.4" {
		t.Fatalf("instance filter %d %+v", resp.StatusCode, fr.got)
	}
	for _, q := range []string{"", "?study=", "?patient=x", "?study=abc"} {
		if resp, body := getBody(t, srv.URL+"/api/v1/results"+q); resp.StatusCode != 400 || !strings.Contains(body, "error") {
			t.Errorf("%q: %d %s", q, resp.StatusCode, body)
		}
	}
	srv2, _ := newServer(t, Config{})
	if resp, _ := getBody(t, srv2.URL+"/api/v1/results?study=1.2"); resp.StatusCode != 503 {
		t.Errorf("nil Results: %d", resp.StatusCode)
	}
}

func TestModelsHealthReady(t *testing.T) {
	srv, _ := newServer(t, Config{Models: fakeModels{}, ReadyTimeout: 200 * time.Millisecond, Ready: map[string]Check{
		"db":   func(context.Context) error { return nil },
		"disk": DiskCheck(t.TempDir(), 1),
	}})
	resp, body := getBody(t, srv.URL+"/api/v1/models")
	if resp.StatusCode != 200 || body != `[{"name":"chest-xray-pneumonia","version":"1.0.0","labels":["NORMAL","PNEUMONIA"]}]`+"\n" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if resp, body := getBody(t, srv.URL+"/healthz"); resp.StatusCode != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("healthz %d %s", resp.StatusCode, body)
	}
	if resp, body := getBody(t, srv.URL+"/readyz"); resp.StatusCode != 200 || !strings.Contains(body, `"disk":"ok"`) {
		t.Fatalf("readyz %d %s", resp.StatusCode, body)
	}
	srv2, _ := newServer(t, Config{ReadyTimeout: 100 * time.Millisecond, Ready: map[string]Check{
		"queue": func(context.Context) error { return errors.New("queue unreachable") },
		"slow":  func(ctx context.Context) error { time.Sleep(time.Second); return nil },
		"disk":  DiskCheck(t.TempDir(), 1<<62),
	}})
	resp, body = getBody(t, srv2.URL+"/readyz")
	if resp.StatusCode != 503 || !strings.Contains(body, `"queue":"queue unreachable"`) || !strings.Contains(body, `"slow":"timeout"`) || !strings.Contains(body, "disk almost full") {
		t.Fatalf("readyz not ready: %d %s", resp.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	m.ObserveIngest("dicomweb", "stored")
	m.ObserveIngest("dicomweb", "stored")
	m.ObserveStage("inference", 30*time.Millisecond)
	m.SetQueueDepth(7)
	m.JobFailed("decode")
	var nilM *Metrics
	nilM.ObserveIngest("x", "y") // nil-safe
	srv, _ := newServer(t, Config{Metrics: m})
	getBody(t, srv.URL+"/healthz")
	_, body := getBody(t, srv.URL+"/metrics")
	for _, want := range []string{
		`radflow_ingest_instances_total{outcome="stored",source="dicomweb"} 2`,
		`radflow_stage_duration_seconds_count{stage="inference"} 1`,
		`radflow_queue_depth 7`,
		`radflow_job_failures_total{reason="decode"} 1`,
		`radflow_http_requests_total{code="200",route="GET /healthz"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestGuardOnEveryRoute(t *testing.T) {
	g := &recordingGuard{deny: map[string]error{
		dicomweb.ActionSearch: ErrForbidden,
		ActionResultsRead:     ErrUnauthenticated,
	}}
	srv, _ := newServer(t, Config{Guard: g, Models: fakeModels{}})
	if resp, _ := getBody(t, srv.URL+"/dicomweb/studies?PatientID=x"); resp.StatusCode != 403 {
		t.Fatalf("dicomweb search: %d", resp.StatusCode)
	}
	if resp, _ := getBody(t, srv.URL+"/api/v1/results?study=1.2"); resp.StatusCode != 401 {
		t.Fatalf("results: %d", resp.StatusCode)
	}
	if resp, _ := getBody(t, srv.URL+"/api/v1/models"); resp.StatusCode != 200 {
		t.Fatalf("models: %d", resp.StatusCode)
	}
	getBody(t, srv.URL+"/dicomweb/studies/1.2/series/3.4/instances/5.6/metadata")
	getBody(t, srv.URL+"/metrics")
	want := []string{"dicomweb.search /dicomweb/studies", "results.read /api/v1/results", "models.read /api/v1/models",
		"dicomweb.retrieve /dicomweb/studies/1.2/series/3.4/instances/5.6/metadata", "metrics.read /metrics"}
	if strings.Join(g.calls, "|") != strings.Join(want, "|") {
		t.Fatalf("guard calls %v", g.calls)
	}
}

type auditRec struct {
	mu  sync.Mutex
	evs []AuditEvent
}

func (a *auditRec) Audit(_ context.Context, ev AuditEvent) {
	a.mu.Lock()
	a.evs = append(a.evs, ev)
	a.mu.Unlock()
}

func TestRequestIDLogsNoPHIAndAudit(t *testing.T) {
	au := &auditRec{}
	srv, logs := newServer(t, Config{Guard: &recordingGuard{}, Auditor: au})
	resp, _ := getBody(t, srv.URL+"/dicomweb/studies?PatientName=SECRET%5ENAME&PatientID=PID777", "X-Request-ID", "req-42")
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-ID") != "req-42" {
		t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("X-Request-ID"))
	}
	resp, _ = getBody(t, srv.URL+"/dicomweb/studies?PatientID=bad", "X-Request-ID", "bad id with spaces;")
	if id := resp.Header.Get("X-Request-ID"); len(id) != 16 {
		t.Fatalf("unsafe request ID not replaced: %q", id)
	}
	out := logs.String()
	if strings.Contains(out, "SECRET") || strings.Contains(out, "PID777") || strings.Contains(out, "PatientName") {
		t.Fatalf("PHI in logs: %s", out)
	}
	if !strings.Contains(out, `"request_id":"req-42"`) || !strings.Contains(out, `"route":"GET /dicomweb/studies"`) || !strings.Contains(out, `"status":200`) {
		t.Fatalf("access log lacks fields: %s", out)
	}
	if len(au.evs) != 2 || au.evs[0].Principal.Subject != "alice" || au.evs[0].Action != dicomweb.ActionSearch || au.evs[0].Status != 200 || au.evs[0].RequestID != "req-42" {
		t.Fatalf("audit %+v", au.evs)
	}
}

func TestPanicBodyLimitTimeout(t *testing.T) {
	var sawDeadline time.Duration
	routes := []Route{
		{Method: "GET", Pattern: "/boom", Action: "test", Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })},
		{Method: "POST", Pattern: "/small", Action: "test", BodyLimit: 10, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.ReadAll(r.Body); err != nil {
				httpJSONError(w, http.StatusRequestEntityTooLarge, "too large")
				return
			}
			w.WriteHeader(204)
		})},
		{Method: "GET", Pattern: "/deadline", Action: "test", Timeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := r.Context().Deadline()
			sawDeadline = time.Until(d)
		})},
	}
	srv, logs := newServer(t, Config{Routes: routes})
	if resp, _ := getBody(t, srv.URL+"/boom"); resp.StatusCode != 500 {
		t.Fatalf("panic: %d", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) {
		t.Fatal("panic not logged")
	}
	resp, err := http.Post(srv.URL+"/small", "text/plain", strings.NewReader("0123456789abc"))
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("over limit with Content-Length: %v %d", err, resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+"/small", "text/plain", io.MultiReader(strings.NewReader("0123456789abc"))) // chunked
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("over limit chunked: %v %d", err, resp.StatusCode)
	}
	resp, _ = http.Post(srv.URL+"/small", "text/plain", strings.NewReader("0123"))
	if resp.StatusCode != 204 {
		t.Fatalf("under limit: %d", resp.StatusCode)
	}
	getBody(t, srv.URL+"/deadline")
	if sawDeadline <= 4*time.Second || sawDeadline > 5*time.Second {
		t.Fatalf("route deadline %v", sawDeadline)
	}
}
