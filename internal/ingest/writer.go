package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// pending is one Ingest waiting for its batch's commit.
type pending struct {
	in      *store.Instance
	jobs    []queue.JobArgs
	dirSync bool // the blob's directory still needs an fsync
	// synced, when not nil, is closed once the blob's fsyncs have
	// returned, with their error in blobErr: the row may be committed
	// only after it is closed with blobErr nil.
	synced  chan struct{}
	blobErr error

	done    chan struct{}
	created bool
	jobsNew int
	err     error
}

// waitBlob waits until the blob is durable or failed and returns
// blobErr (nil at once when there is nothing to wait for).
func (p *pending) waitBlob() error {
	if p.synced == nil {
		return nil
	}
	<-p.synced
	return p.blobErr
}

// writer is the single goroutine that commits: it takes every request
// that arrived while the previous commit was running (up to MaxBatch, and
// up to BatchLinger more), fsyncs the batch's blob directories (one per
// distinct directory: blobs of the same minute share one), builds one
// transaction for the batch while blobs still being fsynced (pending.synced)
// finish, commits it once all of them are durable — one fsync of the WAL
// for the whole batch — and wakes their callers.
func (g *Ingester) writer() {
	defer close(g.done)
	for p := range g.reqs {
		batch := []*pending{p}
		batch = g.drain(batch)
		if g.cfg.BatchLinger > 0 && len(batch) < g.cfg.MaxBatch {
			t := time.NewTimer(g.cfg.BatchLinger)
		linger:
			for len(batch) < g.cfg.MaxBatch {
				select {
				case p, ok := <-g.reqs:
					if !ok {
						break linger
					}
					batch = append(batch, p)
				case <-t.C:
					break linger
				}
			}
			t.Stop()
		}
		g.commit(batch)
	}
}

func (g *Ingester) drain(batch []*pending) []*pending {
	for len(batch) < g.cfg.MaxBatch {
		select {
		case p, ok := <-g.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// commit applies each request under its own savepoint (so one bad request
// does not fail the others) and commits the batch. When the commit fails,
// every request in it fails.
func (g *Ingester) commit(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.CommitTimeout)
	defer cancel()
	defer func() {
		for _, p := range batch {
			close(p.done)
		}
	}()
	for live := batch; len(live) > 0; {
		if !g.commitTx(ctx, live) {
			return
		}
		// A blob was not made durable: its request failed and the
		// transaction was rolled back; commit the others again.
		live = slices.DeleteFunc(slices.Clone(live), func(p *pending) bool { return p.blobErr != nil }) // batch keeps every request, to be woken
	}
}

// commitTx commits batch in one transaction, or fails every request in it.
// It returns true, having rolled back, when the blob of a request could
// not be made durable (that request's err is set, the others' are to be
// committed again).
func (g *Ingester) commitTx(ctx context.Context, batch []*pending) (redo bool) {
	fail := func(err error) {
		for _, p := range batch {
			if p.err == nil {
				p.err = err
			}
			p.created, p.jobsNew = false, 0
		}
	}
	// The blobs' names must be durable before any row points to them.
	var keys []string
	for _, p := range batch {
		if p.dirSync {
			keys = append(keys, p.in.BlobKey)
		}
	}
	if len(keys) > 0 {
		if err := g.cfg.Blobs.(dirSyncer).SyncDirs(ctx, keys...); err != nil {
			fail(fmt.Errorf("ingest: %w", err))
			return false
		}
	}
	tx, err := g.cfg.Metadata.BeginTx(ctx)
	if err != nil {
		fail(fmt.Errorf("ingest: begin: %w", err))
		return false
	}
	for _, p := range batch {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT ingest_one"); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("ingest: savepoint: %w", err))
			return false
		}
		p.created, p.jobsNew, p.err = g.apply(ctx, tx, p)
		if p.err != nil {
			p.created, p.jobsNew = false, 0
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT ingest_one"); err != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("ingest: rollback to savepoint: %w", err))
				return false
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT ingest_one"); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("ingest: release savepoint: %w", err))
			return false
		}
	}
	// Only now wait for the blobs still being fsynced: the statements
	// above ran meanwhile, and nothing of them is durable before COMMIT.
	for _, p := range batch {
		if err := p.waitBlob(); err != nil {
			p.err = fmt.Errorf("ingest: storing blob: %w", err)
			p.created, p.jobsNew = false, 0
			redo = true
		}
	}
	if redo {
		_ = tx.Rollback()
		return true
	}
	if g.commitHook != nil {
		if err := g.commitHook(); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("ingest: commit: %w", err))
			return false
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("ingest: commit: %w", err))
	}
	return false
}

// apply inserts one instance, its queued results and its jobs.
func (g *Ingester) apply(ctx context.Context, tx *sql.Tx, p *pending) (created bool, jobs int, err error) {
	created, err = g.cfg.Metadata.InsertInstanceTx(ctx, tx, p.in)
	if err != nil || !created {
		return false, 0, err
	}
	for _, j := range p.jobs {
		if err := g.cfg.Metadata.QueueResultTx(ctx, tx, j.ResultKey(), p.in.StudyInstanceUID); err != nil {
			return false, 0, err
		}
	}
	n, err := g.cfg.Jobs.EnqueueTx(ctx, tx, p.jobs)
	if err != nil {
		return false, 0, err
	}
	return true, n, nil
}
