package ingest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/queue"
	"github.com/radflow/radflow/internal/store"
)

// ErrInvalid: the bytes are not a storable instance (not DICOM, malformed,
// a missing or malformed UID, too large). The message says why, without
// attribute values other than UIDs. Maps to C-STORE status A900/C000 and a
// STOW-RS failure reason 0xC000 (or 0xA700 for the size).
var ErrInvalid = errors.New("ingest: invalid instance")

// ErrBusy: refused for backpressure (queue depth over the limit, or free
// space under the watermark, then also wrapping store.ErrStorageFull); the
// sender should retry later. Maps to C-STORE status A700 and HTTP 503.
var ErrBusy = errors.New("ingest: busy")

// ErrClosed: the Ingester was closed.
var ErrClosed = errors.New("ingest: closed")

// ErrMismatch: the instance's SOP Class or SOP Instance UID differs from
// the one its request announced (SourceInfo.SOPClassUID/SOPInstanceUID,
// e.g. the C-STORE command's Affected SOP Class/Instance UID). Nothing is
// stored. Maps to C-STORE status A900.
var ErrMismatch = errors.New("ingest: instance does not match its request")

// ErrStudyMismatch: the instance's Study Instance UID differs from
// SourceInfo.StudyInstanceUID (STOW-RS to /studies/{study}). Nothing is
// stored. Maps to STOW-RS failure reason 0xC122.
var ErrStudyMismatch = errors.New("ingest: study instance UID mismatch")

// SourceInfo says how an instance arrived.
type SourceInfo struct {
	CallingAE string       // calling AE title (DIMSE); "" for STOW-RS
	Source    store.Source // store.SourceDIMSE, store.SourceSTOW or store.SourceResult

	// Expected UIDs: when non-empty, the instance's must be equal, else
	// Ingest stores nothing and returns ErrMismatch (SOP Class/Instance)
	// or ErrStudyMismatch (Study).
	SOPClassUID, SOPInstanceUID, StudyInstanceUID string

	// AuditRecord, when set and Metadata can stage audit records
	// (*store.SQLite), returns the record of this instance stored (given
	// its parsed metadata), to be staged in the transaction that inserts
	// its row: the record is then durable exactly when the row is and
	// Outcome.AuditStaged reports it. An error fails the instance (nothing
	// is stored). Not called for an instance already stored, nor when the
	// row is not committed: the caller records those itself.
	AuditRecord func(in *store.Instance) ([]byte, error)
}

// Outcome reports one Ingest.
type Outcome struct {
	SOPInstanceUID   string
	StudyInstanceUID string
	SOPClassUID      string
	// SeriesInstanceUID of the instance.
	SeriesInstanceUID string
	// Created: this call stored the instance; false when it was already
	// stored (the call still succeeds: C-STORE and STOW-RS are idempotent).
	Created bool
	// Jobs is the number of inference jobs this call enqueued.
	Jobs int
	// AuditStaged: SourceInfo.AuditRecord's record was committed with the
	// instance's row (durable once durable returns nil).
	AuditStaged bool
}

// ModelRef names a model version an instance is routed to.
type ModelRef struct {
	Model   string
	Version string
}

// Router picks the model versions that run on an instance, from its
// metadata (Modality, BodyPartExamined, SOPClassUID, Study/Series
// Description, CallingAE). It must be fast and safe for concurrent use.
type Router interface {
	Route(in *store.Instance) []ModelRef
}

// RouterFunc adapts a function to Router.
type RouterFunc func(in *store.Instance) []ModelRef

// Route implements Router.
func (f RouterFunc) Route(in *store.Instance) []ModelRef { return f(in) }

// dirSyncer is a BlobStore whose directory fsyncs can be grouped
// (*store.FS): the writer syncs a batch's directories once before its
// commit.
type dirSyncer interface {
	PutNew(ctx context.Context, key string, r io.Reader) (store.BlobInfo, error)
	SyncDirs(ctx context.Context, keys ...string) error
}

// durablePutter is a BlobStore that writes a fresh key with its bytes and
// its name durable on return, syncing both concurrently (*store.FS).
type durablePutter interface {
	PutNewDurable(ctx context.Context, key string, r io.Reader) (store.BlobInfo, error)
}

// asyncPutter is a BlobStore that writes a fresh key from memory and
// makes it durable later, in the returned sync (*store.FS): the writer
// builds the batch's transaction while the blob is being fsynced, and
// commits only once every sync of the batch has returned nil.
type asyncPutter interface {
	PutNewBytes(ctx context.Context, key string, b []byte) (store.BlobInfo, func() error, error)
}

// Metadata is what Ingest needs from the metadata store (*store.SQLite).
type Metadata interface {
	BeginTx(ctx context.Context) (*sql.Tx, error)
	HasInstance(ctx context.Context, sopInstanceUID string) (bool, error)
	InsertInstanceTx(ctx context.Context, tx *sql.Tx, in *store.Instance) (bool, error)
	QueueResultTx(ctx context.Context, tx *sql.Tx, k store.ResultKey, studyInstanceUID string) error
	FreeBytes() (uint64, error)
}

// walSyncer is a Metadata whose transactions can commit without waiting
// for their fsync, made durable later by SyncWAL (*store.SQLite): the
// writer commits a batch and hands it to the syncer, which fsyncs the log
// for every batch committed meanwhile while the writer goes on with the
// next batch.
type walSyncer interface {
	BeginUnsyncedTx(ctx context.Context) (*sql.Tx, func(), error)
	SyncWAL() error
}

// auditStager is a Metadata that stages audit records in the instance's
// transaction (*store.SQLite; SourceInfo.AuditRecord).
type auditStager interface {
	StageAuditTx(ctx context.Context, tx *sql.Tx, record []byte) error
}

// Jobs is what Ingest needs from the queue (*queue.Queue).
type Jobs interface {
	EnqueueTx(ctx context.Context, tx *sql.Tx, jobs []queue.JobArgs) (int, error)
	Depth(ctx context.Context) (int, error)
}

var (
	_ Metadata    = (*store.SQLite)(nil)
	_ walSyncer   = (*store.SQLite)(nil)
	_ auditStager = (*store.SQLite)(nil)
	_ Jobs        = (*queue.Queue)(nil)
	_ dirSyncer   = (*store.FS)(nil)

	_ durablePutter = (*store.FS)(nil)
	_ asyncPutter   = (*store.FS)(nil)
	_ syncCoverer   = (*store.FS)(nil)
	_ unflushedMeta = (*store.SQLite)(nil)
	_ jobRemover    = (*queue.Queue)(nil)
)

// Config configures New. Metadata, Blobs and Jobs are required.
type Config struct {
	Metadata Metadata
	Blobs    store.BlobStore
	Jobs     Jobs
	Router   Router // nil: no jobs

	// MaxQueueDepth: refuse (ErrBusy) while more jobs than this are
	// available or running; 0: no limit.
	MaxQueueDepth int
	// MinFreeBytes: refuse (ErrBusy wrapping store.ErrStorageFull) while
	// the database's or the blob store's volume has less free; 0: no check.
	MinFreeBytes uint64
	// MaxInstanceSize in bytes (default 2 GiB); larger is ErrInvalid. An
	// instance is held in memory while it is ingested (about its size;
	// allocation grows with the bytes actually received, never from a
	// declared length).
	MaxInstanceSize int64

	// CoverBlobSyncs lets the metadata log's fdatasync make fresh blobs
	// durable instead of their own, where the stores allow it
	// (store.FS.CoverSyncs), and checks at New the blobs a power loss may
	// have cost (see unflushed.go). For the one process that ingests
	// (radflow serve), not for worker processes sharing its database.
	CoverBlobSyncs bool
	// RemovedRecord, when not nil, returns the audit record (JSON, as
	// SourceInfo.AuditRecord) of an instance the start-up check removes;
	// it is staged in the removal's transaction.
	RemovedRecord func(r store.RemovedInstance) ([]byte, error)

	// MaxBatch: most instances committed in one transaction (default 128).
	MaxBatch int
	// BatchLinger: how long the writer waits for more instances when a
	// batch is not full (default 0: a batch is whatever arrived while the
	// previous commit was being fsynced, which already batches under load
	// without delaying a lone sender).
	BatchLinger time.Duration
	// CommitTimeout bounds one batch's transaction (default 30 s).
	CommitTimeout time.Duration
	// Logger gets warnings (never attribute values); default slog.Default().
	Logger *slog.Logger
}

// Ingester is the one way instances enter radflow (DIMSE C-STORE and
// STOW-RS both call Ingest). Safe for concurrent use; concurrent calls
// share group commits.
type Ingester struct {
	cfg   Config
	log   *slog.Logger
	reqs  chan *pending
	done  chan struct{}
	locks uidLocks

	closeMu sync.RWMutex
	closed  bool

	depth cached
	free  cached

	// walErr is the first failed SyncWAL: commits after it cannot be
	// trusted to be durable (the kernel may have dropped the pages), so
	// every later Ingest fails with it until radflow is restarted and
	// SQLite recovers its log. Set by the syncer.
	walErr atomic.Pointer[error]

	// covered: fresh blobs are made durable by the log's fdatasync
	// (coverBlobSyncs); batch numbers the writer's transactions, flushed
	// is the last batch whose log fdatasync returned (set by the syncer),
	// cleared the last one deleted from blob_unflushed (writer only).
	covered        bool
	batch, cleared int64
	flushed        atomic.Int64
	recovered      []store.RemovedInstance

	// test hooks
	uidHook    func(in *store.Instance) // rewrites UIDs after parsing (benchmark)
	commitHook func() error             // runs before COMMIT; an error aborts it
}

// New starts the group-commit writer. Call Close when done.
func New(cfg Config) (*Ingester, error) {
	if cfg.Metadata == nil || cfg.Blobs == nil || cfg.Jobs == nil {
		return nil, errors.New("ingest: Metadata, Blobs and Jobs are required")
	}
	if cfg.MaxInstanceSize <= 0 {
		cfg.MaxInstanceSize = 2 << 30
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 128
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Ingester{cfg: cfg, log: cfg.Logger, reqs: make(chan *pending, cfg.MaxBatch), done: make(chan struct{})}
	g.depth.ttl = 250 * time.Millisecond
	g.free.ttl = time.Second
	// Instances whose blobs the previous run left unflushed are checked
	// before anything new is ingested; then the blobs' own fdatasyncs go
	// where the log's covers them (see unflushed.go).
	if err := g.recoverUnflushed(); err != nil {
		return nil, err
	}
	g.coverBlobSyncs()
	go g.writer()
	return g, nil
}

// Close waits for pending commits and stops the writer; later calls to
// Ingest return ErrClosed.
func (g *Ingester) Close() error {
	g.closeMu.Lock()
	if !g.closed {
		g.closed = true
		close(g.reqs)
	}
	g.closeMu.Unlock()
	<-g.done
	g.clearFlushed()
	return nil
}

// Err returns the failure that stops Ingest until restart (a failed fsync
// of the metadata log), or nil. /readyz reports it.
func (g *Ingester) Err() error {
	if e := g.walErr.Load(); e != nil {
		return *e
	}
	return nil
}

// IngestFile ingests the Part 10 file (or bare data set) at path, e.g. a
// DIMSE receiver's spool file. The file is not removed.
func (g *Ingester) IngestFile(ctx context.Context, path string, info SourceInfo) (Outcome, error) {
	f, err := os.Open(path)
	if err != nil {
		return Outcome{}, fmt.Errorf("ingest: %w", err)
	}
	defer f.Close()
	return g.Ingest(ctx, f, info)
}

// Ingest reads one instance from r (a Part 10 file or a bare data set; at
// most MaxInstanceSize bytes) and stores it: parse, validate, refuse under
// backpressure, write the bytes to the blob store, then in one
// transaction (shared with concurrent calls: group commit) insert the
// instance row, a queued result and a job per routed model version, and
// commit it once the blob is durable (its fsync runs while the
// transaction is built). It returns after that commit is durable. An instance already stored returns
// Created=false and stores nothing. On any failure nothing stays stored: a
// blob written for a failed commit is deleted.
//
// A *bytes.Buffer is read in place, not copied: the caller must not change
// it until Ingest returns (Ingest does not keep it after).
//
// errors: ErrInvalid (wrapping dicom.ErrNotDICOM / dicom.ErrMalformed when
// parsing failed), ErrBusy (wrapping store.ErrStorageFull for disk space),
// ErrClosed, ctx's error, or a storage error.
func (g *Ingester) Ingest(ctx context.Context, r io.Reader, info SourceInfo) (Outcome, error) {
	out, durable, err := g.IngestUnsynced(ctx, r, info)
	if err != nil {
		return out, err
	}
	if err := durable(); err != nil {
		out.Created, out.Jobs = false, 0
		return out, err
	}
	return out, nil
}

// IngestUnsynced is Ingest returning as soon as the outcome is decided:
// the instance's row committed (visible to readers) or the instance
// refused, but the commit not yet durable. durable (never nil when err is
// nil) waits until it is and must then be called exactly once: it returns
// nil once the instance may be acknowledged, or the error that keeps it
// from being acknowledged (a failed fsync of the metadata log; the row
// stays committed and Ingest refuses everything after it, see Err). Until
// durable returns, a concurrent Ingest of the same SOP Instance UID waits.
//
// The caller uses the time for work that needs the outcome but not its
// durability: package service appends the instance's audit record, so
// that the record's fsync and the log's run side by side.
//
// errors: as Ingest.
func (g *Ingester) IngestUnsynced(ctx context.Context, r io.Reader, info SourceInfo) (out Outcome, durable func() error, err error) {
	if info.Source != store.SourceDIMSE && info.Source != store.SourceSTOW && info.Source != store.SourceResult {
		return Outcome{}, nil, fmt.Errorf("ingest: unknown source %q", info.Source)
	}
	if err := g.walErr.Load(); err != nil {
		return Outcome{}, nil, *err
	}
	var b []byte
	if buf, ok := r.(*bytes.Buffer); ok {
		// Already in memory (the DIMSE handler's Part 10 copy): use it in
		// place rather than copying half a megabyte again.
		b = buf.Bytes()
	} else {
		// Nothing of the instance's bytes outlives this call (parsed
		// values are copied into strings), so the buffer is reused.
		buf := GetBuffer(0)
		defer PutBuffer(buf)
		if _, err := buf.ReadFrom(io.LimitReader(r, g.cfg.MaxInstanceSize+1)); err != nil {
			return Outcome{}, nil, fmt.Errorf("ingest: reading instance: %w", err)
		}
		b = buf.Bytes()
	}
	if int64(len(b)) > g.cfg.MaxInstanceSize {
		return Outcome{}, nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, g.cfg.MaxInstanceSize)
	}
	in, out, err := g.prepare(b, info)
	if err != nil {
		return out, nil, err
	}

	unlock := g.locks.lock(in.SOPInstanceUID)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	exists, err := g.cfg.Metadata.HasInstance(ctx, in.SOPInstanceUID)
	if err != nil {
		return out, nil, fmt.Errorf("ingest: %w", err)
	}
	if exists {
		return out, noWait, nil
	}
	if err := g.backpressure(ctx, info.Source != store.SourceResult); err != nil {
		return out, nil, err
	}

	now := time.Now().UTC()
	in.BlobKey = store.InstanceBlobKey(in.SOPInstanceUID, now)
	var bi store.BlobInfo
	p := &pending{done: make(chan struct{}), settled: make(chan struct{})}
	deferDirSync := false
	switch bs := g.cfg.Blobs.(type) {
	case asyncPutter:
		// The fsyncs run while the writer builds the transaction.
		var sync func() error
		if bi, sync, err = bs.PutNewBytes(ctx, in.BlobKey, b); err == nil {
			in.BlobKey = bi.Key // a pack region's key where the store packs
			p.synced = make(chan struct{})
			go func() {
				p.blobErr = sync()
				close(p.synced)
			}()
		}
	case durablePutter:
		// File and directory fsyncs concurrently: one sync's latency.
		bi, err = bs.PutNewDurable(ctx, in.BlobKey, bytes.NewReader(b))
	case dirSyncer:
		deferDirSync = true
		bi, err = bs.PutNew(ctx, in.BlobKey, bytes.NewReader(b))
	default:
		bi, err = g.cfg.Blobs.Put(ctx, in.BlobKey, bytes.NewReader(b))
	}
	if err != nil {
		// Put removes its temp file; a failed directory fsync may leave the
		// renamed file, so delete it too.
		g.deleteBlob(in.BlobKey)
		return out, nil, fmt.Errorf("ingest: storing blob: %w", err)
	}
	in.Size, in.SHA256 = bi.Size, bi.SHA256
	in.ReceivedAt = now
	p.dirSync = deferDirSync
	locked = false // submit unlocks
	return g.submit(in, out, p, unlock, info.AuditRecord)
}

// prepare parses b and checks it against what its request announced.
// out carries the UIDs as far as they were read.
func (g *Ingester) prepare(b []byte, info SourceInfo) (*store.Instance, Outcome, error) {
	in, err := metadata(b, info)
	if err != nil {
		return nil, Outcome{}, err
	}
	if g.uidHook != nil {
		g.uidHook(in)
	}
	out := Outcome{SOPInstanceUID: in.SOPInstanceUID, StudyInstanceUID: in.StudyInstanceUID, SOPClassUID: in.SOPClassUID,
		SeriesInstanceUID: in.SeriesInstanceUID}
	if info.SOPClassUID != "" && info.SOPClassUID != in.SOPClassUID {
		return nil, out, fmt.Errorf("%w: SOP Class UID %s, request announced %s", ErrMismatch, in.SOPClassUID, info.SOPClassUID)
	}
	if info.SOPInstanceUID != "" && info.SOPInstanceUID != in.SOPInstanceUID {
		return nil, out, fmt.Errorf("%w: SOP Instance UID %s, request announced %s", ErrMismatch, in.SOPInstanceUID, info.SOPInstanceUID)
	}
	if info.StudyInstanceUID != "" && info.StudyInstanceUID != in.StudyInstanceUID {
		return nil, out, fmt.Errorf("%w: Study Instance UID %s, request addressed %s", ErrStudyMismatch, in.StudyInstanceUID, info.StudyInstanceUID)
	}
	return in, out, nil
}

// submit routes the instance whose blob is written (p.synced, when not
// nil, closes once it is durable; its error in p.blobErr), hands it to the
// group-commit writer and waits until its outcome is decided, as
// IngestUnsynced returns. unlock releases the instance's UID lock: at
// once on failure, or when durable returns. record, when not nil, is
// SourceInfo.AuditRecord: its record is staged with the row.
func (g *Ingester) submit(in *store.Instance, out Outcome, p *pending, unlock func(), record func(*store.Instance) ([]byte, error)) (Outcome, func() error, error) {
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	var jobs []queue.JobArgs
	if g.cfg.Router != nil {
		seen := map[ModelRef]bool{}
		for _, m := range g.cfg.Router.Route(in) {
			if !seen[m] {
				seen[m] = true
				jobs = append(jobs, queue.JobArgs{SOPInstanceUID: in.SOPInstanceUID, Model: m.Model, Version: m.Version})
			}
		}
	}

	p.in, p.jobs = in, jobs
	if _, ok := g.cfg.Metadata.(auditStager); ok && record != nil {
		rec, err := record(in)
		if err != nil {
			p.waitBlob()
			g.deleteBlob(in.BlobKey)
			return out, nil, fmt.Errorf("ingest: audit record: %w", err)
		}
		p.auditRec = rec
	}
	g.closeMu.RLock()
	if g.closed {
		g.closeMu.RUnlock()
		p.waitBlob()
		g.deleteBlob(in.BlobKey)
		return out, nil, ErrClosed
	}
	g.reqs <- p
	g.closeMu.RUnlock()
	// Wait even if ctx ends: the batch may still commit, and the blob must
	// stay exactly when the row does. The writer bounds the wait.
	<-p.settled
	if !p.committed {
		<-p.done // closed with settled
		if p.err != nil || !p.created {
			p.waitBlob() // the writer may have failed before waiting for it
			g.deleteBlob(in.BlobKey)
		}
		if p.err != nil {
			return out, nil, p.err
		}
		return out, noWait, nil
	}
	out.Created, out.Jobs, out.AuditStaged = p.created, p.jobsNew, p.staged
	locked = false // until durable returns
	var once sync.Once
	return out, func() error {
		once.Do(func() {
			<-p.done
			unlock()
		})
		return p.err // the row stays, and so does its blob
	}, nil
}

func noWait() error { return nil }

func (g *Ingester) deleteBlob(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.cfg.Blobs.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNotFound) {
		// An orphan blob wastes space but no row points to it.
		g.log.Warn("ingest: could not delete the blob of a failed ingest", "blob_key", key, "err", err)
	}
}

// backpressure returns ErrBusy when the queue is too deep (checked only
// when checkQueue: a result SR is written by the jobs that drain the queue,
// so refusing it for depth would stall them) or disk too full. Both figures
// are cached briefly so a burst does not query per instance.
func (g *Ingester) backpressure(ctx context.Context, checkQueue bool) error {
	if checkQueue && g.cfg.MaxQueueDepth > 0 {
		d, err := g.depth.get(func() (uint64, error) {
			n, err := g.cfg.Jobs.Depth(ctx)
			return uint64(n), err
		})
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		if d > uint64(g.cfg.MaxQueueDepth) {
			return fmt.Errorf("%w: %d jobs waiting, limit %d", ErrBusy, d, g.cfg.MaxQueueDepth)
		}
	}
	if g.cfg.MinFreeBytes > 0 {
		free, err := g.free.get(func() (uint64, error) {
			a, err := g.cfg.Metadata.FreeBytes()
			if err != nil {
				return 0, err
			}
			if fr, ok := g.cfg.Blobs.(interface{ FreeBytes() (uint64, error) }); ok {
				b, err := fr.FreeBytes()
				if err != nil {
					return 0, err
				}
				a = min(a, b)
			}
			return a, nil
		})
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		if free < g.cfg.MinFreeBytes {
			return fmt.Errorf("%w: %w: %d bytes free, watermark %d", ErrBusy, store.ErrStorageFull, free, g.cfg.MinFreeBytes)
		}
	}
	return nil
}

// metadata parses b and extracts the stored attributes, validating UIDs.
func metadata(b []byte, info SourceInfo) (*store.Instance, error) {
	d, err := dicom.ParseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// The parser keeps a value cut short by the end of the bytes (to read
	// damaged archives); a received instance that ends early is refused.
	for _, w := range d.Warnings {
		if strings.Contains(w, "truncated") {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, w)
		}
	}
	in := &store.Instance{
		SOPInstanceUID:    d.SOPInstanceUID(),
		SOPClassUID:       d.SOPClassUID(),
		StudyInstanceUID:  d.StudyInstanceUID(),
		SeriesInstanceUID: d.SeriesInstanceUID(),
		TransferSyntaxUID: d.TransferSyntaxUID,
		PatientID:         d.String(tag.PatientID),
		PatientName:       d.String(tag.PatientName),
		PatientBirthDate:  d.String(tag.PatientBirthDate),
		StudyDate:         d.String(tag.StudyDate),
		StudyTime:         d.String(tag.StudyTime),
		AccessionNumber:   d.String(tag.AccessionNumber),
		StudyDescription:  d.String(tag.StudyDescription),
		SeriesDescription: d.String(tag.SeriesDescription),
		Modality:          d.Modality(),
		BodyPartExamined:  d.BodyPartExamined(),
		SeriesNumber:      intAttr(d, tag.SeriesNumber),
		InstanceNumber:    intAttr(d, tag.InstanceNumber),
		CallingAE:         info.CallingAE,
		Source:            info.Source,
	}
	for _, u := range []struct{ name, v string }{
		{"SOP Instance UID", in.SOPInstanceUID},
		{"SOP Class UID", in.SOPClassUID},
		{"Study Instance UID", in.StudyInstanceUID},
		{"Series Instance UID", in.SeriesInstanceUID},
	} {
		if err := dicom.CheckReceivedUID(u.v); err != nil { // leading zeros tolerated: devices send them
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, u.name, err)
		}
	}
	return in, nil
}

func intAttr(d *dicom.Instance, t tag.Tag) *int {
	v := d.Ints(t)
	if len(v) == 0 {
		return nil
	}
	return &v[0]
}

// cached is a value refreshed at most every ttl.
type cached struct {
	mu  sync.Mutex
	ttl time.Duration
	at  time.Time
	v   uint64
}

func (c *cached) get(f func() (uint64, error)) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.ttl {
		return c.v, nil
	}
	v, err := f()
	if err != nil {
		return 0, err
	}
	c.v, c.at = v, time.Now()
	return v, nil
}

// uidLocks serialises Ingest calls for the same SOP Instance UID so the
// exists check, the blob write and the insert cannot interleave.
type uidLocks struct {
	mu sync.Mutex
	m  map[string]*uidLock
}

type uidLock struct {
	mu sync.Mutex
	n  int
}

func (l *uidLocks) lock(uid string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*uidLock{}
	}
	e := l.m[uid]
	if e == nil {
		e = &uidLock{}
		l.m[uid] = e
	}
	e.n++
	l.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		l.mu.Lock()
		e.n--
		if e.n == 0 {
			delete(l.m, uid)
		}
		l.mu.Unlock()
	}
}

// SweepOrphans removes blob files older than olderThan that no instance
// row references (left by a crash between a blob write and its commit)
// and stale temporary files, and tidies pack files no live process
// writes (store.FS.SweepPacks). Run it at startup or periodically with
// olderThan well above CommitTimeout (e.g. an hour). Blob stores other
// than *store.FS are left alone (0, nil). Returns the files removed plus
// the packs changed.
func (g *Ingester) SweepOrphans(ctx context.Context, olderThan time.Duration) (int, error) {
	fsb, ok := g.cfg.Blobs.(interface {
		RemoveOrphans(ctx context.Context, olderThan time.Duration, referenced func(context.Context, string) (bool, error)) (int, error)
	})
	if !ok {
		return 0, nil
	}
	ref, ok := g.cfg.Metadata.(interface {
		HasBlobKey(ctx context.Context, key string) (bool, error)
	})
	if !ok {
		return 0, errors.New("ingest: the metadata store cannot look up blob keys")
	}
	n, err := fsb.RemoveOrphans(ctx, olderThan, ref.HasBlobKey)
	if err != nil {
		return n, fmt.Errorf("ingest: sweeping orphans: %w", err)
	}
	// Pack files no live process writes: unreferenced regions punched
	// out, the zero fill a crash left cut off.
	packs, ok1 := g.cfg.Blobs.(interface {
		SweepPacks(ctx context.Context, olderThan time.Duration, keys func(context.Context, string) ([]string, error)) (int, error)
	})
	keys, ok2 := g.cfg.Metadata.(interface {
		BlobKeysWithPrefix(ctx context.Context, prefix string) ([]string, error)
	})
	if ok1 && ok2 {
		m, err := packs.SweepPacks(ctx, olderThan, keys.BlobKeysWithPrefix)
		n += m
		if err != nil {
			return n, fmt.Errorf("ingest: sweeping packs: %w", err)
		}
	}
	return n, nil
}
