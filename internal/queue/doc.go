// Package queue is radflow's durable job queue: one inference job per
// (SOP Instance UID, model, version), run by River (riverqueue/river) on
// the same SQLite database as package store, through River's riversqlite
// driver on database/sql and modernc.org/sqlite.
//
// It owns: River's migrations (run by New), the job arguments (JobArgs,
// unique by all three fields so a re-sent instance starts no second job),
// transactional enqueue (EnqueueTx, so the instance row and its jobs commit
// or roll back together), the worker wrapper around a Handler (retries with
// backoff for ordinary errors, cancellation for errors wrapping
// ErrPermanent, panics turned into errors, attempts and errors recorded in
// the results table through a Recorder), and the queue depth used for
// backpressure and metrics.
//
// It does not own: what a job does (the inference pipeline implements
// Handler), the results schema (package store), deciding which jobs an
// instance gets (package ingest with its router).
//
// Processes: workers may run inside radflow serve (Config.Workers > 0) or
// in a separate radflow worker process opening the same database file and
// blob directory (serve then uses Workers = 0, insert only). SQLite allows
// one writer at a time across processes: each process serialises its own
// writes on one connection and waits up to the store's busy_timeout for
// the other's. That is fine for a handful of worker processes on one host;
// real scale-out (many hosts, many workers) wants PostgreSQL with River's
// riverpgxv5 or riverdatabasesql driver, which this package's API already
// fits (EnqueueTx takes a *sql.Tx).
package queue
