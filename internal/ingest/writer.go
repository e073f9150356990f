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

	// settled is closed once the request's outcome is decided (its row
	// committed, or the request failed); done once that outcome may be
	// reported: at the same time, or for a row committed unsynced after
	// the syncer's SyncWAL. settled may be nil (tests).
	settled chan struct{}
	done    chan struct{}
	created bool
	// committed: the row was committed (its blob must stay even when the
	// commit is then reported failed because the log's fsync failed).
	committed bool
	jobsNew   int
	err       error

	// batch is the number of the writer's batch that committed it
	// (blob_unflushed, see unflushed.go).
	batch int64

	// auditRec, when not nil, is the instance's audit record
	// (SourceInfo.AuditRecord), staged with its row; staged: it was (set
	// with created).
	auditRec []byte
	staged   bool
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
// transaction for the batch (without a savepoint per request unless one
// fails, see commitTx) while blobs still being fsynced (pending.synced)
// finish, and commits it once all of them are durable.
//
// With a Metadata that can defer the log's fsync (walSyncer, the SQLite
// store), the COMMIT does not wait for the device: the batch goes to the
// syncer goroutine, which fsyncs the write-ahead log once for every batch
// committed meanwhile and only then wakes their callers, while the writer
// already builds the next batch. Otherwise the COMMIT itself fsyncs (one
// fsync of the WAL for the whole batch) and the callers are woken after it.
func (g *Ingester) writer() {
	defer close(g.done)
	ws, _ := g.cfg.Metadata.(walSyncer)
	var syncq chan []*pending
	if ws != nil {
		syncq = make(chan []*pending, 64)
		stopped := make(chan struct{})
		go g.syncer(ws, syncq, stopped)
		defer func() {
			close(syncq)
			<-stopped
		}()
	}
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
		g.commit(batch, ws, syncq)
	}
}

// syncer wakes the callers of committed batches once the write-ahead log
// holding them is durable: one SyncWAL for every batch that arrived while
// the previous one ran (group commit of the fsync itself).
func (g *Ingester) syncer(ws walSyncer, q <-chan []*pending, stopped chan<- struct{}) {
	defer close(stopped)
	for group := range q {
	more:
		for {
			select {
			case b, ok := <-q:
				if !ok {
					break more
				}
				group = append(group, b...)
			default:
				break more
			}
		}
		err := g.syncWAL(ws)
		if err == nil && g.covered {
			var last int64
			for _, p := range group {
				last = max(last, p.batch)
			}
			g.flushed.Store(max(g.flushed.Load(), last)) // the syncer alone stores
		}
		for _, p := range group {
			if err != nil {
				p.err = err // created and jobsNew were already reported (IngestUnsynced)
			}
			close(p.done)
		}
	}
}

// syncWAL runs ws.SyncWAL unless one failed before: after a failed fsync
// the kernel may have dropped the log's pages and a later fsync can
// succeed without writing them, so the failure is sticky (Ingest refuses
// everything after it until restart, when SQLite recovers its log).
func (g *Ingester) syncWAL(ws walSyncer) error {
	if e := g.walErr.Load(); e != nil {
		return *e
	}
	if err := ws.SyncWAL(); err != nil {
		err = fmt.Errorf("ingest: committed instances may not be durable (restart radflow): %w", err)
		if g.walErr.CompareAndSwap(nil, &err) {
			g.log.Error("ingest: fsync of the metadata log failed; refusing instances until restart", "err", err.Error())
		}
		return *g.walErr.Load()
	}
	return nil
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

// commit applies the batch's requests and commits them; one bad request
// does not fail the others (see commitTx). When the commit fails, every
// request in it fails. Requests whose rows were committed unsynced (ws
// not nil) are woken by the syncer; the others at once.
func (g *Ingester) commit(batch []*pending, ws walSyncer, syncq chan<- []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.CommitTimeout)
	defer cancel()
	defer func() {
		var toSync []*pending
		for _, p := range batch {
			if p.settled != nil {
				close(p.settled)
			}
			if p.committed && syncq != nil {
				toSync = append(toSync, p)
			} else {
				close(p.done)
			}
		}
		if len(toSync) > 0 {
			syncq <- toSync
		}
	}()
	g.batch++
	for _, p := range batch {
		p.batch = g.batch
	}
	isolate := false
	for live := batch; len(live) > 0; {
		if !g.commitTx(ctx, live, isolate, ws) {
			return
		}
		// A blob was not made durable: its request failed and the
		// transaction was rolled back; commit the others again.
		live = slices.DeleteFunc(slices.Clone(live), func(p *pending) bool { return p.blobErr != nil }) // batch keeps every request, to be woken
		// A request that failed on its own (its err set by apply) fails
		// again: go straight to the savepoints.
		isolate = slices.ContainsFunc(live, func(p *pending) bool { return p.err != nil })
	}
}

// commitTx commits batch in one transaction, or fails every request in it.
// It returns true, having rolled back, when the blob of a request could
// not be made durable (that request's err is set, the others' are to be
// committed again).
//
// The requests' statements run straight in the transaction. When one
// request fails (a constraint, a statement's error), the transaction is
// rolled back and built again with each request under its own savepoint,
// so that only the failing requests fail; with isolate, it is built that
// way at once.
func (g *Ingester) commitTx(ctx context.Context, batch []*pending, isolate bool, ws walSyncer) (redo bool) {
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
	// With ws, the transaction commits without its fsync (the syncer's
	// SyncWAL makes it durable); release gives the connection back after
	// COMMIT or ROLLBACK.
	release := func() {}
	begin := func() (*sql.Tx, error) {
		if ws == nil {
			return g.cfg.Metadata.BeginTx(ctx)
		}
		tx, done, err := ws.BeginUnsyncedTx(ctx)
		if err == nil {
			release = done
		}
		return tx, err
	}
	defer func() { release() }()
	// The batches whose log fdatasync has returned leave blob_unflushed
	// with this transaction.
	clear := g.flushed.Load()
	begin = func(begin func() (*sql.Tx, error)) func() (*sql.Tx, error) {
		return func() (*sql.Tx, error) {
			tx, err := begin()
			if err != nil || !g.covered || clear <= g.cleared {
				return tx, err
			}
			if err := g.cfg.Metadata.(unflushedMeta).ClearUnflushedTx(ctx, tx, clear); err != nil {
				_ = tx.Rollback()
				release()
				release = func() {}
				return nil, err
			}
			return tx, nil
		}
	}(begin)
	tx, err := begin()
	if err != nil {
		fail(fmt.Errorf("ingest: begin: %w", err))
		return false
	}
	if !isolate && !g.applyAll(ctx, tx, batch) {
		// The transaction holds part of the failed request (and SQLite may
		// have rolled it back already on some errors): start over.
		_ = tx.Rollback()
		release()
		release = func() {}
		for _, p := range batch {
			p.created, p.jobsNew, p.err = false, 0, nil
		}
		isolate = true
		if tx, err = begin(); err != nil {
			fail(fmt.Errorf("ingest: begin: %w", err))
			return false
		}
	}
	if isolate {
		if err := g.applyEach(ctx, tx, batch); err != nil {
			_ = tx.Rollback()
			fail(err)
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
		return false
	}
	if g.covered {
		g.cleared = max(g.cleared, clear)
	}
	for _, p := range batch {
		p.committed = p.err == nil && p.created
	}
	return false
}

// applyAll applies the requests of batch in tx, stopping at the first that
// fails: it returns false, with that request's err set and part of it
// possibly in tx, which must then be rolled back. The jobs of the whole
// batch go to the queue in one insert (River prepares its statements per
// call); when that insert fails or reports a job as a duplicate, it
// returns false too, with no request's err set, and the batch is applied
// again request by request (applyEach), which counts each one's jobs.
func (g *Ingester) applyAll(ctx context.Context, tx *sql.Tx, batch []*pending) bool {
	var jobs []queue.JobArgs
	for _, p := range batch {
		created, err := g.applyRows(ctx, tx, p)
		if err != nil {
			p.created, p.jobsNew, p.err = false, 0, err
			return false
		}
		p.created, p.jobsNew = created, 0
		if created {
			jobs = append(jobs, p.jobs...)
		}
	}
	if len(jobs) == 0 {
		return true
	}
	n, err := g.cfg.Jobs.EnqueueTx(ctx, tx, jobs)
	if err != nil || n != len(jobs) {
		return false
	}
	for _, p := range batch {
		if p.created {
			p.jobsNew = len(p.jobs)
		}
	}
	return true
}

// applyEach applies each request of batch in tx under its own savepoint:
// a request that fails is undone alone (its err set) and the others stay.
// It returns an error when a savepoint statement failed: tx must then be
// rolled back and every request failed.
func (g *Ingester) applyEach(ctx context.Context, tx *sql.Tx, batch []*pending) error {
	for _, p := range batch {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT ingest_one"); err != nil {
			return fmt.Errorf("ingest: savepoint: %w", err)
		}
		p.created, p.jobsNew, p.err = g.apply(ctx, tx, p)
		if p.err != nil {
			p.created, p.jobsNew = false, 0
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT ingest_one"); err != nil {
				return fmt.Errorf("ingest: rollback to savepoint: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT ingest_one"); err != nil {
			return fmt.Errorf("ingest: release savepoint: %w", err)
		}
	}
	return nil
}

// apply inserts one instance, its queued results and its jobs.
func (g *Ingester) apply(ctx context.Context, tx *sql.Tx, p *pending) (created bool, jobs int, err error) {
	if created, err = g.applyRows(ctx, tx, p); err != nil || !created {
		return false, 0, err
	}
	n, err := g.cfg.Jobs.EnqueueTx(ctx, tx, p.jobs)
	if err != nil {
		return false, 0, err
	}
	return true, n, nil
}

// applyRows inserts one instance and, when it is new, its queued results
// and its staged audit record.
func (g *Ingester) applyRows(ctx context.Context, tx *sql.Tx, p *pending) (created bool, err error) {
	p.staged = false
	created, err = g.cfg.Metadata.InsertInstanceTx(ctx, tx, p.in)
	if err != nil || !created {
		return false, err
	}
	for _, j := range p.jobs {
		if err := g.cfg.Metadata.QueueResultTx(ctx, tx, j.ResultKey(), p.in.StudyInstanceUID); err != nil {
			return false, err
		}
	}
	if p.auditRec != nil {
		if err := g.cfg.Metadata.(auditStager).StageAuditTx(ctx, tx, p.auditRec); err != nil {
			return false, err
		}
		p.staged = true
	}
	if g.covered {
		if err := g.cfg.Metadata.(unflushedMeta).MarkUnflushedTx(ctx, tx, p.batch, p.in.SOPInstanceUID); err != nil {
			return false, err
		}
	}
	return true, nil
}
