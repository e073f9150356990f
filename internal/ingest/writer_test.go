package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

var errInjected = errors.New("injected insert failure")

// failingMetadata is a *store.SQLite whose InsertInstanceTx fails for one
// SOP Instance UID after inserting its row, so the failed request leaves
// part of itself in the transaction. It counts the inserts attempted.
type failingMetadata struct {
	*store.SQLite
	failUID atomic.Pointer[string]
	inserts atomic.Int64
}

func (m *failingMetadata) InsertInstanceTx(ctx context.Context, tx *sql.Tx, in *store.Instance) (bool, error) {
	m.inserts.Add(1)
	created, err := m.SQLite.InsertInstanceTx(ctx, tx, in)
	if f := m.failUID.Load(); err == nil && f != nil && in.SOPInstanceUID == *f {
		return false, errInjected
	}
	return created, err
}

func newFailing(t *testing.T, e *env, blobs store.BlobStore, cfg Config) (*Ingester, *failingMetadata) {
	t.Helper()
	m := &failingMetadata{SQLite: e.db}
	cfg.Metadata, cfg.Blobs, cfg.Jobs = m, blobs, e.q
	if cfg.Router == nil {
		cfg.Router = e.g.cfg.Router
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, m
}

// uids returns the distinct sop_instance_uid values of table, sorted.
func (e *env) uids(tb testing.TB, table string) []string {
	tb.Helper()
	rows, err := e.db.ReadDB().Query(`SELECT DISTINCT sop_instance_uid FROM ` + table + ` ORDER BY 1`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// A batch runs without savepoints; when one request's insert fails, the
// batch is applied again with a savepoint per request: only that request
// fails, the others (before and after it in the batch) are committed,
// and nothing of the failed one stays.
func TestBatchFailedInsertFailsOnlyItsRequest(t *testing.T) {
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	g, m := newFailing(t, e, e.blobs, Config{})
	var commits atomic.Int64
	g.commitHook = func() error { commits.Add(1); return nil }
	mk := func(uid string) *pending {
		return &pending{in: &store.Instance{SOPInstanceUID: uid, SOPClassUID: "1.2", StudyInstanceUID: "3", SeriesInstanceUID: "3.1",
			Modality: "CT", Source: store.SourceDIMSE, Size: 1, SHA256: "00", BlobKey: "k" + uid},
			jobs: []queue.JobArgs{{SOPInstanceUID: uid, Model: "m", Version: "1"}, {SOPInstanceUID: uid, Model: "m", Version: "2"}},
			done: make(chan struct{})}
	}

	// Without a failure: one insert per request, no second pass.
	clean := []*pending{mk("1.1"), mk("1.2"), mk("1.3")}
	commitNow(g, clean)
	for i, p := range clean {
		if !p.created || p.jobsNew != 2 || p.err != nil {
			t.Errorf("clean batch, request %d: created %v, jobs %d, err %v", i, p.created, p.jobsNew, p.err)
		}
	}
	if n := m.inserts.Load(); n != 3 {
		t.Errorf("clean batch: %d inserts, want 3 (one pass)", n)
	}

	m.inserts.Store(0)
	fail := "2.2"
	m.failUID.Store(&fail)
	batch := []*pending{mk("2.1"), mk(fail), mk("2.3"), mk("1.1")}
	commitNow(g, batch)
	if p := batch[1]; !errors.Is(p.err, errInjected) || p.created || p.jobsNew != 0 {
		t.Errorf("failing request: created %v, jobs %d, err %v", p.created, p.jobsNew, p.err)
	}
	for _, i := range []int{0, 2} {
		if p := batch[i]; !p.created || p.jobsNew != 2 || p.err != nil {
			t.Errorf("request %d: created %v, jobs %d, err %v", i, p.created, p.jobsNew, p.err)
		}
	}
	if p := batch[3]; p.created || p.jobsNew != 0 || p.err != nil {
		t.Errorf("already stored: created %v, jobs %d, err %v", p.created, p.jobsNew, p.err)
	}
	// First pass: 2.1, then 2.2 fails; second pass: all four.
	if n := m.inserts.Load(); n != 6 {
		t.Errorf("failing batch: %d inserts, want 6 (2 in the first pass, 4 under savepoints)", n)
	}
	if c := commits.Load(); c != 2 {
		t.Errorf("%d commits, want 2 (one per batch)", c)
	}
	want := []string{"1.1", "1.2", "1.3", "2.1", "2.3"}
	for _, table := range []string{"instances", "results"} {
		if got := e.uids(t, table); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", table, got, want)
		}
	}
	if n := e.count(t, "results"); n != 10 {
		t.Errorf("%d results, want 10", n)
	}
	if n := e.count(t, "river_job"); n != 10 {
		t.Errorf("%d jobs, want 10", n)
	}
}

// Through Ingest: of three instances committed in one batch, the one
// whose insert fails returns its error and leaves no row and no blob; the
// other two are stored with their results and jobs.
func TestIngestFailedInsertFailsOnlyItsRequest(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	// MaxBatch 3 and a long linger: the three requests share one batch.
	g, m := newFailing(t, e, e.blobs, Config{MaxBatch: 3, BatchLinger: time.Hour})
	g.uidHook = distinct("2.25.5151")
	fail := "2.25.5151.2"
	m.failUID.Store(&fail)
	var commits atomic.Int64
	g.commitHook = func() error { commits.Add(1); return nil }
	type result struct {
		out Outcome
		err error
	}
	res := make(chan result, 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			out, err := g.Ingest(context.Background(), bytes.NewReader(b), dimse)
			res <- result{out, err}
		})
	}
	wg.Wait()
	close(res)
	var stored []string
	for r := range res {
		switch {
		case r.out.SOPInstanceUID == fail:
			if !errors.Is(r.err, errInjected) || r.out.Created {
				t.Errorf("failing instance: %+v %v", r.out, r.err)
			}
		case r.err == nil && r.out.Created && r.out.Jobs == 2:
			stored = append(stored, r.out.SOPInstanceUID)
		default:
			t.Errorf("unexpected result %+v %v", r.out, r.err)
		}
	}
	slices.Sort(stored)
	if want := []string{"2.25.5151.1", "2.25.5151.3"}; !slices.Equal(stored, want) {
		t.Fatalf("stored %v, want %v", stored, want)
	}
	if c := commits.Load(); c != 1 {
		t.Errorf("%d commits, want 1", c)
	}
	for _, table := range []string{"instances", "results"} {
		if got := e.uids(t, table); !slices.Equal(got, stored) {
			t.Errorf("%s: %v, want %v", table, got, stored)
		}
	}
	if n := e.count(t, "river_job"); n != 4 {
		t.Errorf("%d jobs, want 4", n)
	}
	ctx := context.Background()
	var keys []string
	for _, uid := range stored {
		in, err := e.db.GetInstance(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(e.blobs.Root(), filepath.FromSlash(in.BlobKey))); err != nil {
			t.Errorf("stored instance's blob: %v", err)
		}
		keys = append(keys, in.BlobKey)
	}
	if f := e.blobFiles(t); len(f) != 2 {
		t.Errorf("blob files %v, want only the stored instances' %v", f, keys)
	}
}

// commitNow commits batch as the writer does (through the syncer when the
// metadata store defers its fsync) and returns once every request in it
// has been woken.
func commitNow(g *Ingester, batch []*pending) {
	ws, _ := g.cfg.Metadata.(walSyncer)
	if ws == nil {
		g.commit(batch, nil, nil)
		return
	}
	q := make(chan []*pending, 1)
	stopped := make(chan struct{})
	go g.syncer(ws, q, stopped)
	g.commit(batch, ws, q)
	close(q)
	<-stopped
}

// failingWAL is the SQLite store whose log fsync fails.
type failingWAL struct {
	*store.SQLite
	err error
}

func (f failingWAL) SyncWAL() error { return f.err }

// A failed fsync of the log fails the instances whose commit it was to
// make durable, keeps their committed rows' blobs (a row never points to a
// deleted blob), and refuses every later instance: after a failed fsync
// the kernel may have dropped the pages, so nothing is acknowledged until
// a restart has SQLite recover its log.
func TestFailedWALSyncIsSticky(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	eio := errors.New("input/output error")
	g, err := New(Config{Metadata: failingWAL{e.db, eio}, Blobs: e.blobs, Jobs: e.q, Router: e.g.cfg.Router})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	out, err := g.Ingest(ctx, bytes.NewReader(b), dimse)
	if !errors.Is(err, eio) || out.Created {
		t.Fatalf("first: %+v, err %v; want the fsync's error", out, err)
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Errorf("%d instance rows; the commit itself succeeded, want 1", n)
	}
	if f := e.blobFiles(t); len(f) != 1 {
		t.Errorf("blobs %v: the committed row's blob must stay", f)
	}
	other := bytes.Replace(b, []byte(ctUID), []byte(strings.Replace(ctUID, ".109", ".108", 1)), -1)
	if _, err := g.Ingest(ctx, bytes.NewReader(other), dimse); !errors.Is(err, eio) {
		t.Errorf("after the failure: err %v, want it refused with the fsync's error", err)
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Errorf("%d instance rows after a refused ingest, want 1", n)
	}
	if err := g.Err(); !errors.Is(err, eio) {
		t.Errorf("Err() = %v, want the fsync's error (for /readyz)", err)
	}
	if err := e.g.Err(); err != nil {
		t.Errorf("a healthy ingester's Err() = %v", err)
	}
}

// IngestUnsynced answers once the row is committed; the instance's SOP
// Instance UID stays locked until durable has returned, so a second copy
// sent meanwhile is answered only after the first is durable.
func TestIngestUnsyncedHoldsTheUIDUntilDurable(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	ctx := context.Background()
	out, durable, err := e.g.IngestUnsynced(ctx, bytes.NewReader(b), dimse)
	if err != nil || !out.Created || out.Jobs != 2 || durable == nil {
		t.Fatalf("IngestUnsynced: %+v, durable nil %v, err %v", out, durable == nil, err)
	}
	if has, err := e.db.HasInstance(ctx, ctUID); err != nil || !has {
		t.Fatalf("row not visible after IngestUnsynced: %v %v", has, err)
	}
	second := make(chan Outcome, 1)
	go func() {
		o, err := e.g.Ingest(ctx, bytes.NewReader(b), dimse)
		if err != nil {
			t.Error(err)
		}
		second <- o
	}()
	select {
	case o := <-second:
		t.Fatalf("second copy answered (%+v) before the first was durable", o)
	case <-time.After(100 * time.Millisecond):
	}
	if err := durable(); err != nil {
		t.Fatal(err)
	}
	if err := durable(); err != nil { // a second call is harmless
		t.Fatal(err)
	}
	if o := <-second; o.Created || o.Jobs != 0 {
		t.Errorf("second copy: %+v, want already stored", o)
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Errorf("%d rows", n)
	}
	// An instance refused before any commit has nothing to wait for.
	if _, d, err := e.g.IngestUnsynced(ctx, bytes.NewReader([]byte("not DICOM")), dimse); !errors.Is(err, ErrInvalid) || d != nil {
		t.Errorf("invalid: durable nil %v, err %v", d == nil, err)
	}
}
