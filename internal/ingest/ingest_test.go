package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

const (
	ctUID      = "1.2.840.113619.2.30.1.1762295590.1623.978668950.109"
	ctStudyUID = "1.2.840.113619.2.30.1.1762295590.1623.978668949.886"
	ctSHA256   = "d743aa9631b9a83009947f730a925176b5106c8da3c0f45604b7b0e4713b0b2d" // sha256sum of the file
)

// ctBytes returns the 0.5 MB CT (implicit VR little endian) from shared data.
func ctBytes(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "dicom", "cornerstoneWADOImageLoader", "CTImage.dcm"))
	if err != nil {
		tb.Skipf("shared test data absent (../shared/dicom/cornerstoneWADOImageLoader/CTImage.dcm): %v", err)
	}
	return b
}

type env struct {
	dir   string
	db    *store.SQLite
	blobs *store.FS
	q     *queue.Queue
	g     *Ingester
}

func newEnv(tb testing.TB, dir string, qcfg queue.Config, cfg Config) *env {
	tb.Helper()
	return newEnvWith(tb, dir, store.SQLiteOptions{}, qcfg, cfg)
}

// newEnvWith is newEnv with the metadata store opened with sopts (e.g. a
// PHI cipher).
func newEnvWith(tb testing.TB, dir string, sopts store.SQLiteOptions, qcfg queue.Config, cfg Config) *env {
	tb.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "radflow.db"), sopts)
	if err != nil {
		tb.Fatal(err)
	}
	blobs, err := store.NewFS(filepath.Join(dir, "blobs"), store.FSOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	qcfg.ReadDB = db.ReadDB()
	q, err := queue.New(ctx, db.WriteDB(), qcfg)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Metadata, cfg.Blobs, cfg.Jobs = db, blobs, q
	if cfg.Router == nil {
		cfg.Router = RouterFunc(func(in *store.Instance) []ModelRef {
			if in.Modality == "CT" {
				return []ModelRef{{"lung", "1.0.0"}, {"lung", "1.1.0"}, {"lung", "1.0.0"}}
			}
			return nil
		})
	}
	g, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{dir: dir, db: db, blobs: blobs, q: q, g: g}
	tb.Cleanup(func() {
		g.Close()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		q.Stop(sctx)
		cancel()
		db.Close()
	})
	return e
}

// blobFiles lists the files under the blob root (temp files included).
func (e *env) blobFiles(tb testing.TB) []string {
	tb.Helper()
	var out []string
	filepath.WalkDir(e.blobs.Root(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// blob returns the stored (decoded) bytes of key.
func (e *env) blob(tb testing.TB, key string) []byte {
	tb.Helper()
	rc, err := e.blobs.Open(context.Background(), key)
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (e *env) count(tb testing.TB, table string) int {
	tb.Helper()
	var n int
	if err := e.db.ReadDB().QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

var dimse = SourceInfo{CallingAE: "CT_SCANNER", Source: store.SourceDIMSE}

func TestIngestStoresRowBlobResultsAndJobs(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	out, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse)
	if err != nil {
		t.Fatal(err)
	}
	want := Outcome{SOPInstanceUID: ctUID, StudyInstanceUID: ctStudyUID, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
		SeriesInstanceUID: "1.2.840.113619.2.30.1.1762295590.1623.978668949.890", Created: true, Jobs: 2}
	if out != want {
		t.Errorf("outcome %+v, want %+v", out, want)
	}
	in, err := e.db.GetInstance(ctx, ctUID)
	if err != nil {
		t.Fatal(err)
	}
	// Values as dcmdump prints them.
	got := []string{in.SOPClassUID, in.StudyInstanceUID, in.SeriesInstanceUID, in.TransferSyntaxUID, in.PatientID, in.PatientName,
		in.StudyDate, in.StudyTime, in.AccessionNumber, in.StudyDescription, in.SeriesDescription, in.Modality, in.BodyPartExamined,
		in.CallingAE, string(in.Source), in.SHA256}
	wantS := []string{"1.2.840.10008.5.1.4.1.1.2", ctStudyUID, "1.2.840.113619.2.30.1.1762295590.1623.978668949.890", "1.2.840.10008.1.2",
		"2178309", "MISTER^CT", "20010105", "083501", "0000000001", "CHEST", "HELICAL CHEST", "CT", "", "CT_SCANNER", "dimse", ctSHA256}
	for i := range got {
		if got[i] != wantS[i] {
			t.Errorf("field %d: %q, want %q", i, got[i], wantS[i])
		}
	}
	if in.Size != int64(len(b)) || in.SeriesNumber == nil || *in.SeriesNumber != 2 || in.InstanceNumber == nil || *in.InstanceNumber != 1 {
		t.Errorf("size %d series %v instance %v", in.Size, in.SeriesNumber, in.InstanceNumber)
	}
	if time.Since(in.ReceivedAt) > time.Minute {
		t.Errorf("received_at %v", in.ReceivedAt)
	}
	if !bytes.Equal(e.blob(t, in.BlobKey), b) {
		t.Error("stored blob differs from the input")
	}
	res, err := e.db.ListResults(ctx, ctUID, "")
	if err != nil || len(res) != 2 || res[0].Status != store.StatusQueued || res[0].Version != "1.0.0" || res[1].Version != "1.1.0" ||
		res[0].StudyInstanceUID != ctStudyUID {
		t.Errorf("results %+v %v", res, err)
	}
	if n := e.count(t, "river_job"); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}

	// Idempotent: the same instance again stores nothing more.
	for _, src := range []SourceInfo{dimse, {Source: store.SourceSTOW}} {
		out, err = e.g.Ingest(ctx, bytes.NewReader(b), src)
		if err != nil || out.Created || out.Jobs != 0 || out.SOPInstanceUID != ctUID {
			t.Errorf("re-ingest: %+v %v", out, err)
		}
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Errorf("%d instance rows", n)
	}
	if n := e.count(t, "river_job"); n != 2 {
		t.Errorf("%d jobs after re-ingest, want 2", n)
	}
	if f := e.blobFiles(t); len(f) != 1 {
		t.Errorf("blob files %v, want 1", f)
	}

	// IngestFile reads a spool file the same way.
	tmp := filepath.Join(t.TempDir(), "spool.dcm")
	os.WriteFile(tmp, b, 0o600)
	if out, err := e.g.IngestFile(ctx, tmp, dimse); err != nil || out.Created {
		t.Errorf("IngestFile of a stored instance: %+v %v", out, err)
	}
}

func TestIngestInvalid(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{MaxInstanceSize: int64(len(b))})
	ctx := context.Background()

	_, err := e.g.Ingest(ctx, strings.NewReader("this is not DICOM at all, just some text bytes"), dimse)
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, dicom.ErrNotDICOM) {
		t.Errorf("text: %v, want ErrInvalid wrapping dicom.ErrNotDICOM", err)
	}

	// The same file with a letter in its SOP Instance UID (same length).
	bad := bytes.Replace(b, []byte(ctUID), []byte(strings.Replace(ctUID, "113619", "11361X", 1)), -1)
	_, err = e.g.Ingest(ctx, bytes.NewReader(bad), dimse)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "SOP Instance UID") || !strings.Contains(err.Error(), "'X'") {
		t.Errorf("bad UID: %v", err)
	}
	// An empty component.
	bad = bytes.Replace(b, []byte(ctUID), []byte(strings.Replace(ctUID, ".2.", "..2", 1)), -1)
	if _, err = e.g.Ingest(ctx, bytes.NewReader(bad), dimse); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "empty component") {
		t.Errorf("empty component: %v", err)
	}
	// One byte over the size limit.
	if _, err = e.g.Ingest(ctx, io.MultiReader(bytes.NewReader(b), strings.NewReader("x")), dimse); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversize: %v", err)
	}
	if _, err = e.g.Ingest(ctx, bytes.NewReader(b), SourceInfo{Source: "ftp"}); err == nil {
		t.Error("unknown source accepted")
	}
	if n := e.count(t, "instances"); n != 0 {
		t.Errorf("%d rows after invalid input", n)
	}
	if f := e.blobFiles(t); len(f) != 0 {
		t.Errorf("blob files %v after invalid input", f)
	}
}

// distinct returns a hook giving each ingest a fresh SOP Instance UID.
func distinct(prefix string) func(in *store.Instance) {
	var n atomic.Int64
	return func(in *store.Instance) { in.SOPInstanceUID = fmt.Sprintf("%s.%d", prefix, n.Add(1)) }
}

func TestBackpressure(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{MaxQueueDepth: 3})
	e.g.depth.ttl = 0 // no caching: each call sees the current depth
	e.g.uidHook = distinct("2.25.1")
	ctx := context.Background()
	// Each instance adds 2 jobs: depth 0 → ok, 2 → ok, 4 → busy.
	for i, wantErr := range []bool{false, false, true} {
		_, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse)
		if wantErr != errors.Is(err, ErrBusy) || (!wantErr && err != nil) {
			t.Fatalf("ingest %d: %v (want busy: %v)", i, err, wantErr)
		}
	}
	if n := e.count(t, "instances"); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
	if f := e.blobFiles(t); len(f) != 2 {
		t.Errorf("%d blob files, want 2", len(f))
	}
	// An instance already stored is still acknowledged while busy.
	e.g.uidHook = func(in *store.Instance) { in.SOPInstanceUID = "2.25.1.1" }
	if out, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse); err != nil || out.Created {
		t.Errorf("duplicate while busy: %+v %v", out, err)
	}

	// Disk watermark above the free space.
	e2 := newEnv(t, t.TempDir(), queue.Config{}, Config{MinFreeBytes: 1 << 62})
	_, err := e2.g.Ingest(ctx, bytes.NewReader(b), dimse)
	if !errors.Is(err, ErrBusy) || !errors.Is(err, store.ErrStorageFull) {
		t.Errorf("watermark: %v", err)
	}
	if n := e2.count(t, "instances"); n != 0 {
		t.Errorf("%d rows stored while full", n)
	}
}

func TestFailedCommitLeavesNothing(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	boom := errors.New("disk I/O error")
	e.g.commitHook = func() error { return boom }
	ctx := context.Background()
	if _, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse); !errors.Is(err, boom) {
		t.Fatalf("err %v, want the commit's", err)
	}
	for _, table := range []string{"instances", "results", "river_job"} {
		if n := e.count(t, table); n != 0 {
			t.Errorf("%d rows in %s after a failed commit", n, table)
		}
	}
	if f := e.blobFiles(t); len(f) != 0 {
		t.Errorf("orphan blobs %v", f)
	}
	// The next attempt stores it.
	e.g.commitHook = nil
	if out, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse); err != nil || !out.Created || out.Jobs != 2 {
		t.Errorf("retry: %+v %v", out, err)
	}
	if f := e.blobFiles(t); len(f) != 1 {
		t.Errorf("blobs %v", f)
	}
}

// One failing instance in a batch fails alone; the others commit.
func TestBatchSavepointIsolation(t *testing.T) {
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	mk := func(uid string, src store.Source) *pending {
		return &pending{in: &store.Instance{SOPInstanceUID: uid, SOPClassUID: "1.2", StudyInstanceUID: "3", SeriesInstanceUID: "3.1",
			Source: src, Size: 1, SHA256: "00", BlobKey: "k"}, jobs: []queue.JobArgs{{SOPInstanceUID: uid, Model: "m", Version: "1"}},
			done: make(chan struct{})}
	}
	batch := []*pending{mk("1.1", store.SourceSTOW), mk("1.2", "bogus"), mk("1.3", store.SourceDIMSE), mk("1.1", store.SourceSTOW)}
	commitNow(e.g, batch)
	if !batch[0].created || batch[0].jobsNew != 1 || batch[0].err != nil {
		t.Errorf("first: %+v", batch[0])
	}
	if batch[1].err == nil || batch[1].created {
		t.Errorf("second (CHECK violation) did not fail: %+v", batch[1])
	}
	if !batch[2].created || batch[2].err != nil {
		t.Errorf("third: %+v", batch[2])
	}
	if batch[3].created || batch[3].err != nil {
		t.Errorf("duplicate in the same batch: %+v", batch[3])
	}
	if n := e.count(t, "instances"); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
	if n := e.count(t, "river_job"); n != 2 {
		t.Errorf("%d jobs, want 2", n)
	}
	if n := e.count(t, "results"); n != 2 {
		t.Errorf("%d results, want 2", n)
	}
}

func TestConcurrentIngest(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	var commits atomic.Int32
	e.g.commitHook = func() error { commits.Add(1); return nil }
	ctx := context.Background()

	// 8 senders of the same instance: exactly one creates it.
	var created atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			out, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse)
			if err != nil {
				t.Error(err)
			}
			if out.Created {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 || e.count(t, "instances") != 1 || len(e.blobFiles(t)) != 1 || e.count(t, "river_job") != 2 {
		t.Errorf("same UID ×8: created %d, rows %d, blobs %d, jobs %d", created.Load(), e.count(t, "instances"), len(e.blobFiles(t)), e.count(t, "river_job"))
	}

	// 4 senders × 10 distinct instances: all stored.
	e.g.uidHook = distinct("2.25.7")
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if out, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse); err != nil || !out.Created {
					t.Error(out, err)
				}
			}
		})
	}
	wg.Wait()
	if n := e.count(t, "instances"); n != 41 {
		t.Errorf("%d rows, want 41", n)
	}
	if n := len(e.blobFiles(t)); n != 41 {
		t.Errorf("%d blobs, want 41", n)
	}
	t.Logf("%d commits for 41 stored instances (+7 duplicates)", commits.Load())
}

// Ingest through to a worker: the job runs and records its result.
func TestIngestToWorker(t *testing.T) {
	b := ctBytes(t)
	var e *env
	h := queue.HandlerFunc(func(ctx context.Context, job queue.JobArgs) error {
		in, err := e.db.GetInstance(ctx, job.SOPInstanceUID)
		if err != nil {
			return err
		}
		rc, err := e.blobs.Open(ctx, in.BlobKey)
		if err != nil {
			return err
		}
		defer rc.Close()
		h := sha256.New()
		n, _ := io.Copy(h, rc)
		// A stand-in model: reports the blob's size and first hash byte.
		return e.db.CompleteResult(ctx, &store.Result{SOPInstanceUID: job.SOPInstanceUID, Model: job.Model, Version: job.Version,
			Label: hex.EncodeToString(h.Sum(nil))[:8], Probabilities: map[string]float64{"bytes": float64(n)}})
	})
	e = newEnv(t, t.TempDir(), queue.Config{Workers: 2, Handler: h, PollInterval: 50 * time.Millisecond}, Config{})
	ctx := context.Background()
	if err := e.q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := e.db.ListResults(ctx, "", ctStudyUID)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) == 2 && res[0].Status == store.StatusDone && res[1].Status == store.StatusDone {
			for _, r := range res {
				if r.Label != ctSHA256[:8] || r.Probabilities["bytes"] != float64(len(b)) {
					t.Errorf("result %+v", r)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("results %+v", res)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClosed(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	e.g.Close()
	if _, err := e.g.Ingest(context.Background(), bytes.NewReader(b), dimse); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if f := e.blobFiles(t); len(f) != 0 {
		t.Errorf("blobs %v", f)
	}
}

// TestKillSafety runs ingests in a child process, kills it with SIGKILL
// mid-stream, and checks that every instance it acknowledged is stored
// with its bytes, and that no row points to a missing or wrong blob.
func TestKillSafety(t *testing.T) {
	if dir := os.Getenv("RADFLOW_INGEST_CHILD_DIR"); dir != "" {
		childIngestLoop(t, dir)
		return
	}
	b := ctBytes(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillSafety$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RADFLOW_INGEST_CHILD_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if uid, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			acked[uid] = true
			if len(acked) == 30 {
				break
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	cmd.Wait()
	if len(acked) < 30 {
		t.Fatalf("child acknowledged only %d instances", len(acked))
	}

	e := newEnv(t, dir, queue.Config{}, Config{})
	ctx := context.Background()
	rows, err := e.db.SearchInstances(ctx, store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, in := range rows {
		stored[in.SOPInstanceUID] = true
		rc, err := e.blobs.Open(ctx, in.BlobKey)
		if err != nil {
			t.Errorf("row %s: blob: %v", in.SOPInstanceUID, err)
			continue
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, b) {
			t.Errorf("row %s: blob differs", in.SOPInstanceUID)
		}
	}
	for uid := range acked {
		if !stored[uid] {
			t.Errorf("acknowledged %s is not stored", uid)
		}
	}
	var jobs int
	e.db.ReadDB().QueryRow(`SELECT count(*) FROM river_job`).Scan(&jobs)
	if jobs != 2*len(rows) {
		t.Errorf("%d jobs for %d rows, want 2 per row", jobs, len(rows))
	}
	t.Logf("acknowledged %d, stored %d, blob files %d (the kill may leave blobs no row references)",
		len(acked), len(rows), len(e.blobFiles(t)))
	// The sweep removes exactly the unreferenced files.
	files := len(e.blobFiles(t))
	n, err := e.g.SweepOrphans(ctx, -time.Minute) // every file counts as old
	if err != nil {
		t.Fatal(err)
	}
	if n != files-len(rows) || len(e.blobFiles(t)) != len(rows) {
		t.Errorf("sweep removed %d of %d files, leaving %d for %d rows", n, files, len(e.blobFiles(t)), len(rows))
	}
}

func TestSweepOrphans(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	out, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	orphan := store.InstanceBlobKey("2.25.5", now)
	if _, err := e.blobs.PutNew(ctx, orphan, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(e.blobs.Root(), ".tmp-123")
	os.WriteFile(tmp, []byte("partial"), 0o600)
	fresh := store.InstanceBlobKey("2.25.6", now)
	if _, err := e.blobs.PutNew(ctx, fresh, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-2 * time.Hour)
	in, _ := e.db.GetInstance(ctx, out.SOPInstanceUID)
	for _, p := range []string{filepath.Join(e.blobs.Root(), filepath.FromSlash(orphan)), tmp, filepath.Join(e.blobs.Root(), filepath.FromSlash(in.BlobKey))} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.g.SweepOrphans(ctx, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v; want 2 (old orphan and old temp file)", n, err)
	}
	for key, want := range map[string]bool{in.BlobKey: true, orphan: false, fresh: true} {
		_, err := e.blobs.Stat(ctx, key)
		if (err == nil) != want {
			t.Errorf("%s present=%v, want %v", key, err == nil, want)
		}
	}
}

func childIngestLoop(t *testing.T, dir string) {
	b := ctBytes(t)
	e := newEnv(t, dir, queue.Config{}, Config{})
	e.g.uidHook = distinct("2.25.42")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				out, err := e.g.Ingest(context.Background(), bytes.NewReader(b), dimse)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Printf("ACK %s\n", out.SOPInstanceUID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestIngestRefusesMismatchedUIDs(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	for _, c := range []struct {
		info SourceInfo
		want error
	}{
		{SourceInfo{Source: store.SourceDIMSE, SOPInstanceUID: "1.2.3"}, ErrMismatch},
		{SourceInfo{Source: store.SourceDIMSE, SOPClassUID: "1.2.840.10008.5.1.4.1.1.4"}, ErrMismatch},
		{SourceInfo{Source: store.SourceSTOW, StudyInstanceUID: "1.2.3"}, ErrStudyMismatch},
	} {
		if _, err := e.g.Ingest(ctx, bytes.NewReader(b), c.info); !errors.Is(err, c.want) {
			t.Errorf("%+v: err %v, want %v", c.info, err, c.want)
		}
	}
	if ok, err := e.db.HasInstance(ctx, ctUID); err != nil || ok {
		t.Fatalf("a mismatched instance was stored (%v, %v)", ok, err)
	}
	out, err := e.g.Ingest(ctx, bytes.NewReader(b), SourceInfo{Source: store.SourceResult, SOPInstanceUID: ctUID, StudyInstanceUID: ctStudyUID})
	if err != nil || !out.Created {
		t.Fatalf("matching UIDs, source result: %+v %v", out, err)
	}
}
