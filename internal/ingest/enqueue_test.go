package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/queue"
)

// countingJobs counts EnqueueTx calls and the jobs in each.
type countingJobs struct {
	*queue.Queue
	mu    sync.Mutex
	sizes []int
}

func (j *countingJobs) EnqueueTx(ctx context.Context, tx *sql.Tx, jobs []queue.JobArgs) (int, error) {
	j.mu.Lock()
	j.sizes = append(j.sizes, len(jobs))
	j.mu.Unlock()
	return j.Queue.EnqueueTx(ctx, tx, jobs)
}

// ingestBatch sends n distinct instances that share one batch (MaxBatch n,
// a long linger) and returns their outcomes.
func ingestBatch(t *testing.T, g *Ingester, n int) []Outcome {
	t.Helper()
	b := ctBytes(t)
	outs := make([]Outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			out, err := g.Ingest(context.Background(), bytes.NewReader(b), dimse)
			if err != nil {
				t.Errorf("ingest %d: %v", i, err)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	return outs
}

// The jobs of a whole batch go to the queue in one insert, and each
// instance still reports its own jobs.
func TestBatchJobsEnqueuedOnce(t *testing.T) {
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	jobs := &countingJobs{Queue: e.q}
	g := newGated(t, e, &gatedBlobs{FS: e.blobs, onSync: func(_ int, _ string, sync func() error) error { return sync() }},
		jobs, Config{Router: e.g.cfg.Router, MaxBatch: 3, BatchLinger: time.Hour})
	g.uidHook = distinct("2.25.7171")
	for i, out := range ingestBatch(t, g, 3) {
		if !out.Created || out.Jobs != 2 {
			t.Errorf("instance %d: %+v, want created with 2 jobs", i, out)
		}
	}
	if len(jobs.sizes) != 1 || jobs.sizes[0] != 6 {
		t.Errorf("EnqueueTx calls with %v jobs, want one call with 6", jobs.sizes)
	}
	if n := e.count(t, "river_job"); n != 6 {
		t.Errorf("%d jobs, want 6", n)
	}
	if n := e.count(t, "results"); n != 6 {
		t.Errorf("%d results, want 6", n)
	}
}

// When the batch's insert skips a job as a duplicate (River's uniqueness
// by args), the batch is applied again request by request so that each
// instance reports exactly the jobs it added.
func TestBatchJobsDuplicateFallsBackPerRequest(t *testing.T) {
	e := newEnv(t, t.TempDir(), queue.Config{}, Config{})
	// A job for the second instance's first model exists already (left by
	// an earlier incarnation of the instance, say).
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.EnqueueTx(ctx, tx, []queue.JobArgs{{SOPInstanceUID: "2.25.7272.2", Model: "lung", Version: "1.0.0"}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	jobs := &countingJobs{Queue: e.q}
	g := newGated(t, e, &gatedBlobs{FS: e.blobs, onSync: func(_ int, _ string, sync func() error) error { return sync() }},
		jobs, Config{Router: e.g.cfg.Router, MaxBatch: 3, BatchLinger: time.Hour})
	g.uidHook = distinct("2.25.7272")
	total := 0
	for _, out := range ingestBatch(t, g, 3) {
		if !out.Created {
			t.Errorf("%+v: not created", out)
		}
		want := 2
		if out.SOPInstanceUID == "2.25.7272.2" {
			want = 1
		}
		if out.Jobs != want {
			t.Errorf("%s: %d jobs, want %d", out.SOPInstanceUID, out.Jobs, want)
		}
		total += out.Jobs
	}
	if total != 5 {
		t.Errorf("%d new jobs reported, want 5", total)
	}
	// One batched insert, then one per request.
	if len(jobs.sizes) != 4 || jobs.sizes[0] != 6 {
		t.Errorf("EnqueueTx calls with %v jobs, want [6 2 2 2]", jobs.sizes)
	}
	if n := e.count(t, "river_job"); n != 6 {
		t.Errorf("%d jobs, want 6 (5 new and the one already there)", n)
	}
}
