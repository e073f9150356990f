package store

import (
	"context"
	"database/sql"
)

// InstanceStore keeps instance metadata and answers QIDO-RS queries.
//
// The *Tx methods take the caller's transaction so an instance row, its
// queued results and its jobs (package queue) commit or roll back together.
// They are written against database/sql so a PostgreSQL implementation can
// use jackc/pgx through pgx/stdlib, with River's riverdatabasesql driver on
// the same *sql.Tx.
type InstanceStore interface {
	// InsertInstanceTx inserts in unless a row with its SOP Instance UID
	// exists; created reports whether it inserted. in.ReceivedAt zero means now.
	InsertInstanceTx(ctx context.Context, tx *sql.Tx, in *Instance) (created bool, err error)
	// GetInstance returns the row. errors: ErrNotFound.
	GetInstance(ctx context.Context, sopInstanceUID string) (*Instance, error)
	// HasInstance reports whether the row exists.
	HasInstance(ctx context.Context, sopInstanceUID string) (bool, error)
	// SearchStudies, SearchSeries and SearchInstances match q (see Query)
	// and return rows ordered by StudyDate/StudyTime (newest first) and
	// Study Instance UID; by Series Number; by Instance Number.
	// errors: ErrInvalidQuery.
	SearchStudies(ctx context.Context, q Query) ([]Study, error)
	SearchSeries(ctx context.Context, q Query) ([]Series, error)
	SearchInstances(ctx context.Context, q Query) ([]Instance, error)
}

// ResultStore keeps one Result per (instance, model, version).
type ResultStore interface {
	// QueueResultTx creates the result row with status queued, or leaves an
	// existing one untouched.
	QueueResultTx(ctx context.Context, tx *sql.Tx, k ResultKey, studyInstanceUID string) error
	// MarkRunning sets status running and counts an attempt, unless the
	// result is already done. errors: ErrNotFound.
	MarkRunning(ctx context.Context, k ResultKey) error
	// RecordError stores an attempt's error: status failed when final,
	// queued (to be retried) otherwise. A done result is left as it is.
	// errors: ErrNotFound.
	RecordError(ctx context.Context, k ResultKey, msg string, final bool) error
	// CompleteResult stores a finished result (status done) for r's key,
	// creating or replacing the row: a handler that runs twice still leaves
	// one row. r.StudyInstanceUID may be "" when the row exists.
	CompleteResult(ctx context.Context, r *Result) error
	// GetResult returns one result. errors: ErrNotFound.
	GetResult(ctx context.Context, k ResultKey) (*Result, error)
	// ListResults returns the results of an instance and/or a study (at
	// least one must be set; errors: ErrInvalidQuery), ordered by id.
	ListResults(ctx context.Context, sopInstanceUID, studyInstanceUID string) ([]Result, error)
}
