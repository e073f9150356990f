package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// gatedBlobs is a *store.FS whose PutNewBytes syncs go through a test's
// hook: hold them, fail one, count them.
type gatedBlobs struct {
	*store.FS
	mu     sync.Mutex
	calls  int
	onSync func(call int, key string, sync func() error) error
}

func (b *gatedBlobs) PutNewBytes(ctx context.Context, key string, data []byte) (store.BlobInfo, func() error, error) {
	info, sync, err := b.FS.PutNewBytes(ctx, key, data)
	if err != nil {
		return info, nil, err
	}
	b.mu.Lock()
	b.calls++
	call := b.calls
	b.mu.Unlock()
	return info, func() error { return b.onSync(call, key, sync) }, nil
}

// signalJobs reports each EnqueueTx: the writer is applying a request
// inside its open transaction.
type signalJobs struct {
	*queue.Queue
	applied chan struct{}
}

func (j signalJobs) EnqueueTx(ctx context.Context, tx *sql.Tx, jobs []queue.JobArgs) (int, error) {
	n, err := j.Queue.EnqueueTx(ctx, tx, jobs)
	j.applied <- struct{}{}
	return n, err
}

func newGated(t *testing.T, e *env, blobs *gatedBlobs, jobs Jobs, cfg Config) *Ingester {
	t.Helper()
	cfg.Metadata, cfg.Blobs, cfg.Jobs = e.db, blobs, jobs
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// The writer inserts the row and its jobs while the blob is still being
// fsynced, and commits only after the fsync returned.
func TestRowIsCommittedOnlyAfterItsBlobIsDurable(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	release := make(chan struct{})
	var durable atomic.Bool
	blobs := &gatedBlobs{FS: e.blobs, onSync: func(_ int, _ string, sync func() error) error {
		<-release
		err := sync()
		durable.Store(err == nil)
		return err
	}}
	jobs := signalJobs{Queue: e.q, applied: make(chan struct{}, 1)}
	g := newGated(t, e, blobs, jobs, Config{Router: e.g.cfg.Router})
	var committedEarly atomic.Bool
	g.commitHook = func() error {
		if !durable.Load() {
			committedEarly.Store(true)
		}
		return nil
	}
	type result struct {
		out Outcome
		err error
	}
	res := make(chan result, 1)
	go func() {
		out, err := g.Ingest(context.Background(), bytes.NewReader(b), dimse)
		res <- result{out, err}
	}()
	<-jobs.applied // the transaction holds the row and its jobs; the blob is not durable
	select {
	case r := <-res:
		t.Fatalf("Ingest returned before its blob was durable: %+v %v", r.out, r.err)
	default:
	}
	if n := e.count(t, "instances"); n != 0 {
		t.Fatalf("%d instance rows visible before the commit", n)
	}
	close(release)
	r := <-res
	if r.err != nil || !r.out.Created || r.out.Jobs != 2 {
		t.Fatalf("%+v %v", r.out, r.err)
	}
	if committedEarly.Load() {
		t.Fatal("COMMIT ran before the blob's fsync returned")
	}
	if n := e.count(t, "instances"); n != 1 {
		t.Fatalf("%d instance rows, want 1", n)
	}
}

// A blob whose fsync fails fails its own request only: the batch's
// transaction is rolled back and the others are committed without it; its
// blob file is removed and it has no row.
func TestFailedBlobSyncFailsOnlyItsRequest(t *testing.T) {
	b := ctBytes(t)
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	boom := errors.New("fsync: input/output error")
	var failedKey atomic.Value
	all := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(3)
	blobs := &gatedBlobs{FS: e.blobs, onSync: func(call int, key string, sync func() error) error {
		arrived.Done()
		<-all // the three requests are in one batch before any blob is durable
		err := sync()
		if call == 2 {
			failedKey.Store(key)
			return boom
		}
		return err
	}}
	// MaxBatch 3 and a long linger: the writer takes all three in one batch
	// (a full batch does not wait out the linger).
	g := newGated(t, e, blobs, e.q, Config{Router: e.g.cfg.Router, MaxBatch: 3, BatchLinger: time.Hour})
	g.uidHook = distinct("2.25.4242")
	var commits atomic.Int64
	g.commitHook = func() error { commits.Add(1); return nil }
	type result struct {
		out Outcome
		err error
	}
	res := make(chan result, 3)
	for range 3 {
		go func() {
			out, err := g.Ingest(context.Background(), bytes.NewReader(b), dimse)
			res <- result{out, err}
		}()
	}
	arrived.Wait()
	close(all)
	var stored, failed []Outcome
	for range 3 {
		r := <-res
		switch {
		case r.err == nil && r.out.Created:
			stored = append(stored, r.out)
		case errors.Is(r.err, boom):
			failed = append(failed, r.out)
		default:
			t.Errorf("unexpected result %+v %v", r.out, r.err)
		}
	}
	if len(stored) != 2 || len(failed) != 1 {
		t.Fatalf("stored %d, failed %d; want 2 and 1", len(stored), len(failed))
	}
	if c := commits.Load(); c != 1 {
		t.Errorf("%d commits, want 1 (the batch again without the failed request)", c)
	}
	ctx := context.Background()
	for _, o := range stored {
		in, err := e.db.GetInstance(ctx, o.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(e.blobs.Root(), filepath.FromSlash(in.BlobKey))); err != nil {
			t.Errorf("stored instance's blob: %v", err)
		}
	}
	if ok, err := e.db.HasInstance(ctx, failed[0].SOPInstanceUID); err != nil || ok {
		t.Errorf("failed instance has a row: %v %v", ok, err)
	}
	key := failedKey.Load().(string)
	if _, err := os.Stat(filepath.Join(e.blobs.Root(), filepath.FromSlash(key))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed instance's blob is still there: %v", err)
	}
	if n := e.count(t, "instances"); n != 2 {
		t.Errorf("%d instance rows, want 2", n)
	}
}
