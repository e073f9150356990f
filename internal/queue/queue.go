package queue

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/radflow/radflow/internal/store"
)

// Kind is the River job kind of an inference job.
const Kind = "radflow.infer"

// JobArgs names one inference: a model version on a stored instance. Jobs
// are unique by all three fields while one is available, scheduled,
// running, retryable, pending or completed, so enqueuing the same args
// again starts no second job.
type JobArgs struct {
	SOPInstanceUID string `json:"sop_instance_uid" river:"unique"`
	Model          string `json:"model" river:"unique"`
	Version        string `json:"version" river:"unique"`
}

// Kind implements river.JobArgs.
func (JobArgs) Kind() string { return Kind }

// InsertOpts implements river.JobArgsWithInsertOpts: unique by args.
func (JobArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// ResultKey returns the store key of the job's result.
func (a JobArgs) ResultKey() store.ResultKey {
	return store.ResultKey{SOPInstanceUID: a.SOPInstanceUID, Model: a.Model, Version: a.Version}
}

// Handler runs one job (the inference pipeline implements it). A nil
// error completes the job; an error wrapping ErrPermanent (see Permanent)
// fails it at once; any other error is retried with backoff until
// MaxAttempts. Handle may run more than once for the same args (a retry
// after a crash, a rescued stuck job), so its effects must be idempotent:
// store.ResultStore.CompleteResult is.
type Handler interface {
	Handle(ctx context.Context, job JobArgs) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job JobArgs) error

// Handle implements Handler.
func (f HandlerFunc) Handle(ctx context.Context, job JobArgs) error { return f(ctx, job) }

// ErrPermanent marks an error that retrying cannot fix (bad input,
// unsupported image): the job is cancelled and its result marked failed.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that errors.Is(err, ErrPermanent).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrPermanent, err)
}

// Recorder records attempts in the results table (store.SQLite implements
// it): MarkRunning before each attempt, RecordError after a failed one
// (final when the job will not be retried).
type Recorder interface {
	MarkRunning(ctx context.Context, k store.ResultKey) error
	RecordError(ctx context.Context, k store.ResultKey, msg string, final bool) error
}

// Config configures New.
type Config struct {
	// Workers is how many jobs this process works at once; 0 makes an
	// insert-only queue (radflow serve with a separate radflow worker).
	Workers int
	// Handler runs the jobs; required when Workers > 0.
	Handler Handler
	// Recorder, when set, records attempts and errors in the results table.
	Recorder Recorder
	// MaxAttempts per job (default 5).
	MaxAttempts int
	// JobTimeout cancels an attempt's context after this long (default 10 min).
	JobTimeout time.Duration
	// RetryBackoff returns the delay before retry number attempt (1-based);
	// nil uses River's default (attempt⁴ seconds with ±10% jitter).
	RetryBackoff func(attempt int) time.Duration
	// PollInterval is how often an idle worker looks for jobs inserted by
	// another process (default 500 ms; jobs inserted through this Queue are
	// noticed at once).
	PollInterval time.Duration
	// ReadDB, when set, serves Depth (e.g. store.SQLite.ReadDB()).
	ReadDB *sql.DB
	// Logger for River's own messages (default: slog.Default at warn level
	// and above).
	Logger *slog.Logger
}

// Queue is a River client on the shared SQLite database.
type Queue struct {
	client  *river.Client[*sql.Tx]
	db      *sql.DB
	read    *sql.DB
	working bool
	log     *slog.Logger
}

// clientIDPrefix starts every River client ID radflow makes:
// "radflow:<host>:<pid>:<start unix ns>", so a later process can tell
// whether the process that was running a job still exists.
const clientIDPrefix = "radflow:"

func newClientID() string {
	host, _ := os.Hostname()
	return clientIDPrefix + strings.ReplaceAll(host, ":", "_") + ":" + strconv.Itoa(os.Getpid()) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)
}

// deadLocalClient reports whether id is a radflow client ID of this host
// whose process no longer exists (kill(pid, 0) fails with ESRCH).
func deadLocalClient(id string) bool {
	rest, ok := strings.CutPrefix(id, clientIDPrefix)
	if !ok {
		return false
	}
	parts := strings.Split(rest, ":")
	host, _ := os.Hostname()
	if len(parts) != 3 || parts[0] != strings.ReplaceAll(host, ":", "_") {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// Migrate runs River's migrations (its river_* tables) up to the version
// bundled with this River release. New calls it.
func Migrate(ctx context.Context, db *sql.DB) error {
	m, err := rivermigrate.New(riversqlite.New(db), nil)
	if err != nil {
		return fmt.Errorf("queue: migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("queue: River migrations: %w", err)
	}
	return nil
}

// New migrates River's tables and returns a Queue on db, which must be the
// store's write pool (store.SQLite.WriteDB(): one connection, WAL,
// busy_timeout, BEGIN IMMEDIATE). Call Start to work jobs.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Queue, error) {
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("queue: negative worker count %d", cfg.Workers)
	}
	if cfg.Workers > 0 && cfg.Handler == nil {
		return nil, errors.New("queue: workers need a Handler")
	}
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = 10 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(warnOnly{slog.Default().Handler()})
	}
	rc := &river.Config{
		ID:     newClientID(),
		Logger: logger,
		// Backstop for jobs of a crashed process on another host (or a
		// reused PID): River's rescuer makes them retryable after this.
		// Jobs of a dead process on this host are rescued at Start.
		RescueStuckJobsAfter: cfg.JobTimeout + time.Minute,
		MaxAttempts:          cfg.MaxAttempts,
		JobTimeout:           cfg.JobTimeout,
		FetchPollInterval:    cfg.PollInterval,
		FetchCooldown:        20 * time.Millisecond,
		Workers:              river.NewWorkers(),
	}
	if cfg.RetryBackoff != nil {
		rc.RetryPolicy = backoffPolicy(cfg.RetryBackoff)
	}
	if cfg.Workers == 0 {
		rc.SkipUnknownJobCheck = true // insert-only: the kind is worked elsewhere
	} else {
		river.AddWorker(rc.Workers, &worker{h: cfg.Handler, rec: cfg.Recorder})
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
	}
	client, err := river.NewClient(riversqlite.New(db), rc)
	if err != nil {
		return nil, fmt.Errorf("queue: River client: %w", err)
	}
	read := cfg.ReadDB
	if read == nil {
		read = db
	}
	return &Queue{client: client, db: db, read: read, working: cfg.Workers > 0, log: logger}, nil
}

// Start starts working jobs (no-op for an insert-only queue).
func (q *Queue) Start(ctx context.Context) error {
	if !q.working {
		return nil
	}
	if _, err := q.RescueOrphans(ctx); err != nil {
		return err
	}
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("queue: start: %w", err)
	}
	return nil
}

// RescueOrphans makes jobs available again that are "running" in a
// process of this host that no longer exists (killed, crashed, power
// loss), so their results do not stay "running" until River's rescuer
// notices them (JobTimeout + 1 min). The attempt the dead process made
// stays counted. Start calls it; it returns how many jobs it rescued.
func (q *Queue) RescueOrphans(ctx context.Context) (int, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT id, json(attempted_by) FROM river_job WHERE state = 'running'`)
	if err != nil {
		return 0, fmt.Errorf("queue: running jobs: %w", err)
	}
	var orphans []int64
	for rows.Next() {
		var id int64
		var by sql.NullString
		if err := rows.Scan(&id, &by); err != nil {
			rows.Close()
			return 0, fmt.Errorf("queue: running jobs: %w", err)
		}
		var ids []string
		if by.Valid && json.Unmarshal([]byte(by.String), &ids) == nil && len(ids) > 0 && deadLocalClient(ids[len(ids)-1]) {
			orphans = append(orphans, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("queue: running jobs: %w", err)
	}
	n := 0
	for _, id := range orphans {
		res, err := q.db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE id = ? AND state = 'running'`, id)
		if err != nil {
			return n, fmt.Errorf("queue: rescue job %d: %w", id, err)
		}
		if k, _ := res.RowsAffected(); k == 1 {
			n++
		}
	}
	if n > 0 {
		q.log.Warn("queue: re-queued jobs left running by a process that no longer exists", "jobs", n)
	}
	return n, nil
}

// Stop stops fetching jobs and waits for running ones to finish or ctx to
// end (then their contexts are cancelled and they are retried later).
func (q *Queue) Stop(ctx context.Context) error {
	if !q.working {
		return nil
	}
	err := q.client.Stop(ctx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		err = q.client.StopAndCancel(context.Background())
	}
	if err != nil {
		return fmt.Errorf("queue: stop: %w", err)
	}
	return nil
}

// EnqueueTx inserts one job per args in tx (committed or rolled back with
// the caller's rows) and returns how many were new; args that match an
// existing unique job are skipped.
func (q *Queue) EnqueueTx(ctx context.Context, tx *sql.Tx, jobs []JobArgs) (int, error) {
	if len(jobs) == 0 {
		return 0, nil
	}
	params := make([]river.InsertManyParams, len(jobs))
	for i, j := range jobs {
		params[i] = river.InsertManyParams{Args: j}
	}
	res, err := q.client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return 0, fmt.Errorf("queue: enqueue: %w", err)
	}
	n := 0
	for _, r := range res {
		if !r.UniqueSkippedAsDuplicate {
			n++
		}
	}
	return n, nil
}

// DeleteInstanceJobsTx deletes, in tx, every inference job of the given
// SOP Instance UIDs, whatever its state, and returns how many it deleted:
// for instances removed because they were never acknowledged (package
// ingest, after a power loss; the sender's retry enqueues them again).
// errors: the driver's.
func (q *Queue) DeleteInstanceJobsTx(ctx context.Context, tx *sql.Tx, uids []string) (int, error) {
	n := 0
	for _, uid := range uids {
		res, err := tx.ExecContext(ctx, `DELETE FROM river_job WHERE kind = ? AND json_extract(args, '$.sop_instance_uid') = ?`, Kind, uid)
		if err != nil {
			return n, fmt.Errorf("queue: deleting jobs: %w", err)
		}
		k, _ := res.RowsAffected()
		n += int(k)
	}
	return n, nil
}

// Depth returns the number of jobs available or running: the backlog used
// for backpressure and metrics.
func (q *Queue) Depth(ctx context.Context) (int, error) {
	var n int
	err := q.read.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'running')`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("queue: depth: %w", err)
	}
	return n, nil
}

// Client returns the River client (for job listing and admin tools).
func (q *Queue) Client() *river.Client[*sql.Tx] { return q.client }

type worker struct {
	river.WorkerDefaults[JobArgs]
	h   Handler
	rec Recorder
}

func (w *worker) Work(ctx context.Context, job *river.Job[JobArgs]) error {
	k := job.Args.ResultKey()
	if w.rec != nil {
		// A missing result row is not fatal: the handler's CompleteResult
		// creates it.
		if err := w.rec.MarkRunning(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("queue: marking result running: %w", err)
		}
	}
	err := w.safeHandle(ctx, job.Args)
	if err == nil {
		return nil
	}
	permanent := errors.Is(err, ErrPermanent)
	if w.rec != nil {
		final := permanent || job.Attempt >= job.MaxAttempts
		// Record with a fresh context: ctx may be the one that timed out.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if rerr := w.rec.RecordError(rctx, k, err.Error(), final); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
			err = errors.Join(err, rerr)
		}
		cancel()
	}
	if permanent {
		return river.JobCancel(err)
	}
	return err
}

// safeHandle turns a handler panic into an error (with its stack in the
// error text, no attribute values) so it is recorded and retried.
func (w *worker) safeHandle(ctx context.Context, args JobArgs) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("queue: handler panic: %v\n%s", r, debug.Stack())
		}
	}()
	return w.h.Handle(ctx, args)
}

type backoffPolicy func(attempt int) time.Duration

func (b backoffPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(b(job.Attempt))
}

// warnOnly drops records below warn level.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(a)} }
func (w warnOnly) WithGroup(n string) slog.Handler      { return warnOnly{w.Handler.WithGroup(n)} }

var _ Recorder = (*store.SQLite)(nil)
