package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// pending is one Ingest waiting for its batch's commit.
type pending struct {
	in      *store.Instance
	jobs    []queue.JobArgs
	dirSync bool // the blob's directory still needs an fsync

	done    chan struct{}
	created bool
	jobsNew int
	err     error
}

// writer is the single goroutine that commits: it takes every request
// that arrived while the previous commit was running (up to MaxBatch, and
// up to BatchLinger more), fsyncs the batch's blob directories (one per
// distinct directory: blobs of the same minute share one), commits them
// in one transaction — one fsync of the WAL for the whole batch — and
// wakes their callers.
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
			return
		}
	}
	tx, err := g.cfg.Metadata.BeginTx(ctx)
	if err != nil {
		fail(fmt.Errorf("ingest: begin: %w", err))
		return
	}
	for _, p := range batch {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT ingest_one"); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("ingest: savepoint: %w", err))
			return
		}
		p.created, p.jobsNew, p.err = g.apply(ctx, tx, p)
		if p.err != nil {
			p.created, p.jobsNew = false, 0
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT ingest_one"); err != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("ingest: rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT ingest_one"); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("ingest: release savepoint: %w", err))
			return
		}
	}
	if g.commitHook != nil {
		if err := g.commitHook(); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("ingest: commit: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("ingest: commit: %w", err))
	}
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
