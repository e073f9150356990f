package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/inference"
	"github.com/radflow/radflow/internal/ingest"
	"github.com/radflow/radflow/internal/models"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

const (
	jobChest    = "../../../shared/dicom/nhsx-nih-chestxray/1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm"
	jobChestSOP = "1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888"
)

type fakeJobStore struct {
	mu        sync.Mutex
	instances map[string]*store.Instance
	results   map[store.ResultKey]store.Result
	getErr    error
}

func (f *fakeJobStore) GetInstance(_ context.Context, uid string) (*store.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return nil, f.getErr
	}
	in, ok := f.instances[uid]
	if !ok {
		return nil, store.ErrNotFound
	}
	return in, nil
}

func (f *fakeJobStore) CompleteResult(_ context.Context, r *store.Result) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results[store.ResultKey{SOPInstanceUID: r.SOPInstanceUID, Model: r.Model, Version: r.Version}] = *r
	return nil
}

// fakeSR stores SRs by SOP Instance UID, idempotently like ingest.
type fakeSR struct {
	mu    sync.Mutex
	calls int
	srs   map[string][]byte
}

func (f *fakeSR) Ingest(_ context.Context, r io.Reader, info ingest.SourceInfo) (ingest.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if info.Source != store.SourceResult {
		return ingest.Outcome{}, errors.New("SR not ingested as source result")
	}
	b, _ := io.ReadAll(r)
	in, err := dicom.ParseBytes(b)
	if err != nil {
		return ingest.Outcome{}, err
	}
	uid := in.SOPInstanceUID()
	if _, ok := f.srs[uid]; ok {
		return ingest.Outcome{SOPInstanceUID: uid}, nil
	}
	f.srs[uid] = b
	return ingest.Outcome{SOPInstanceUID: uid, Created: true}, nil
}

type fakeMetrics struct {
	mu       sync.Mutex
	stages   map[string]int
	failures map[string]int
}

func (m *fakeMetrics) ObserveStage(stage string, d time.Duration) {
	m.mu.Lock()
	m.stages[stage]++
	m.mu.Unlock()
}

func (m *fakeMetrics) JobFailed(reason string) {
	m.mu.Lock()
	m.failures[reason]++
	m.mu.Unlock()
}

type jobEnv struct {
	h       *JobHandler
	st      *fakeJobStore
	sr      *fakeSR
	metrics *fakeMetrics
	blobs   *store.FS
}

// newJobEnv builds a handler over the repository's models/ directory.
// needORT skips when ONNX Runtime is missing.
func newJobEnv(t *testing.T, needORT bool) *jobEnv {
	t.Helper()
	if _, err := os.Stat("../../models/chest-xray-pneumonia/1/model.onnx"); err != nil {
		t.Skip("reference model models/chest-xray-pneumonia/1/model.onnx not present yet")
	}
	if needORT {
		if _, err := inference.InitRuntime(""); err != nil {
			t.Skipf("ONNX Runtime library not found (RADFLOW_ORT_LIB or scripts/fetch-ort.sh): %v", err)
		}
	}
	repo, err := models.LoadDir("../../models")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := store.NewFS(t.TempDir(), store.FSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := &jobEnv{
		st:      &fakeJobStore{instances: map[string]*store.Instance{}, results: map[store.ResultKey]store.Result{}},
		sr:      &fakeSR{srs: map[string][]byte{}},
		metrics: &fakeMetrics{stages: map[string]int{}, failures: map[string]int{}},
		blobs:   blobs,
	}
	runner := NewRunner(repo, inference.Options{IntraOpThreads: 1})
	t.Cleanup(func() { runner.Close() })
	e.h = &JobHandler{Runner: runner, Store: e.st, Blobs: blobs, SR: e.sr, Metric: e.metrics, SoftwareVersion: "test"}
	return e
}

// put stores b as instance uid.
func (e *jobEnv) put(t *testing.T, uid string, b []byte) {
	t.Helper()
	key := filepath.ToSlash(filepath.Join("t", uid+".dcm"))
	if _, err := e.blobs.Put(context.Background(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	e.st.instances[uid] = &store.Instance{SOPInstanceUID: uid, StudyInstanceUID: "1.2.3", BlobKey: key}
}

func TestJobHandlerResultAndSRIdempotent(t *testing.T) {
	e := newJobEnv(t, true)
	b, err := os.ReadFile(jobChest)
	if err != nil {
		t.Skipf("shared chest radiograph absent: %v", err)
	}
	e.put(t, jobChestSOP, b)
	job := queue.JobArgs{SOPInstanceUID: jobChestSOP, Model: "chest-xray-pneumonia", Version: "1"}
	ctx := context.Background()
	for range 2 { // the second run is a retry after a crash
		if err := e.h.Handle(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.st.results) != 1 || len(e.sr.srs) != 1 || e.sr.calls != 2 {
		t.Fatalf("%d results, %d SRs stored, %d SR ingests; want 1, 1, 2", len(e.st.results), len(e.sr.srs), e.sr.calls)
	}
	r := e.st.results[job.ResultKey()]
	p0, p1 := r.Probabilities["NORMAL"], r.Probabilities["PNEUMONIA"]
	if r.Status != store.StatusDone || math.Abs(p0+p1-1) > 1e-5 || (r.Label == "PNEUMONIA") != (p1 >= 0.44) || r.StudyInstanceUID != "1.2.3" {
		t.Fatalf("result %+v", r)
	}
	want := SRInstanceUID(jobChestSOP, job.Model, job.Version)
	if r.SRSOPInstanceUID != want || e.sr.srs[want] == nil {
		t.Fatalf("SR UID %q, want %q", r.SRSOPInstanceUID, want)
	}
	if SRInstanceUID(jobChestSOP, job.Model, "2") == want {
		t.Error("the SR UID does not depend on the version")
	}
	sr, _ := dicom.ParseBytes(e.sr.srs[want])
	if sr.SOPClassUID() != "1.2.840.10008.5.1.4.1.1.88.33" || sr.StudyInstanceUID() != "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708" {
		t.Errorf("SR class %s study %s", sr.SOPClassUID(), sr.StudyInstanceUID())
	}
	for _, st := range []string{"decode", "preprocess", "inference", "sr"} {
		if e.metrics.stages[st] != 2 || r.Timings[st] <= 0 {
			t.Errorf("stage %s: %d observations, %v ms", st, e.metrics.stages[st], r.Timings[st])
		}
	}
}

func TestJobHandlerErrors(t *testing.T) {
	e := newJobEnv(t, false)
	ctx := context.Background()
	e.put(t, "1.1", []byte("not DICOM at all, only text"))
	srOnly, err := dicom.BuildResultSR(mustSource(t), dicom.ResultSR{ModelName: "m", ModelVersion: "1",
		Labels: []string{"A", "B"}, Probabilities: []float64{0.5, 0.5}, Label: "A"})
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "1.2", srOnly.Data) // no Pixel Data
	for _, c := range []struct {
		name   string
		job    queue.JobArgs
		reason string
	}{
		{"instance missing", queue.JobArgs{SOPInstanceUID: "9.9", Model: "chest-xray-pneumonia", Version: "1"}, FailInstance},
		{"not DICOM", queue.JobArgs{SOPInstanceUID: "1.1", Model: "chest-xray-pneumonia", Version: "1"}, FailParse},
		{"no pixel data", queue.JobArgs{SOPInstanceUID: "1.2", Model: "chest-xray-pneumonia", Version: "1"}, FailDecode},
		{"unknown version", queue.JobArgs{SOPInstanceUID: "1.2", Model: "chest-xray-pneumonia", Version: "7"}, FailModel},
	} {
		err := e.h.Handle(ctx, c.job)
		if !errors.Is(err, queue.ErrPermanent) {
			t.Errorf("%s: %v, want a permanent error", c.name, err)
		}
		if e.metrics.failures[c.reason] != 1 {
			t.Errorf("%s: failures %v, want reason %s once", c.name, e.metrics.failures, c.reason)
		}
	}
	// Bytes that are not the ones the row recorded (its digest differs)
	// fail for good, as the instance's, before anything is decoded.
	e.put(t, "1.3", srOnly.Data)
	e.st.instances["1.3"].SHA256 = strings.Repeat("ab", 32)
	if err := e.h.Handle(ctx, queue.JobArgs{SOPInstanceUID: "1.3", Model: "chest-xray-pneumonia", Version: "1"}); !errors.Is(err, queue.ErrPermanent) || !errors.Is(err, store.ErrDigestMismatch) {
		t.Errorf("digest mismatch: %v, want a permanent store.ErrDigestMismatch", err)
	}
	if e.metrics.failures[FailInstance] != 2 {
		t.Errorf("digest mismatch: failures %v, want reason %s", e.metrics.failures, FailInstance)
	}
	// A database error is transient: retried, not permanent.
	e.st.getErr = errors.New("database is locked")
	if err := e.h.Handle(ctx, queue.JobArgs{SOPInstanceUID: "1.1", Model: "chest-xray-pneumonia", Version: "1"}); err == nil || errors.Is(err, queue.ErrPermanent) {
		t.Errorf("database error: %v, want a transient error", err)
	}
	if e.metrics.failures[FailRetry] != 1 || len(e.st.results) != 0 || e.sr.calls != 0 {
		t.Errorf("failures %v, results %d, SR ingests %d", e.metrics.failures, len(e.st.results), e.sr.calls)
	}
}

// mustSource parses the chest radiograph, or skips.
func mustSource(t *testing.T) *dicom.Instance {
	t.Helper()
	in, err := dicom.ParseFile(jobChest)
	if err != nil {
		t.Skipf("shared chest radiograph absent: %v", err)
	}
	return in
}
