package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// SQLiteOptions tunes OpenSQLite; the zero value is the production setting.
type SQLiteOptions struct {
	// BusyTimeout is how long a connection waits for another connection or
	// process holding the write lock (default 10 s).
	BusyTimeout time.Duration
	// ReadConns is the size of the read-only pool (default 4).
	ReadConns int
	// NoFdatasync keeps SQLite's transpiled default of fsync(2) for commits
	// instead of fdatasync(2). SQLite's own Linux builds use fdatasync, which
	// is as durable (it writes the data and the size needed to read it back)
	// and skips the timestamp update. The switch is process-wide.
	NoFdatasync bool
	// PHI, when set, encrypts Patient's Name, Patient ID, Patient's Birth
	// Date and Accession Number in the instances table and matches them
	// through blind indexes (see phi.go); rows written before are
	// encrypted at open. nil: plaintext columns. errors at open: ErrPHIKey.
	PHI PHICipher
	// PHIFuzzyIndex: fuzzy Patient's Name matching under PHI (default
	// FuzzyNone).
	PHIFuzzyIndex FuzzyIndex
}

// SQLite is the SQLite implementation of InstanceStore and ResultStore.
//
// Durability: journal_mode=WAL with synchronous=FULL, so every commit
// fsyncs the write-ahead log before it returns: an acknowledged row
// survives kill -9 and power loss (as far as the disk honours fsync).
// synchronous=NORMAL would survive kill -9 but may lose the last commits
// on power loss, so it is not the setting; group commit (package ingest)
// amortises the fsync instead. The one exception is BeginUnsyncedTx,
// whose commits are made durable by a later SyncWAL (package ingest
// answers none of their instances before it): the ingest writer commits
// the next batch while the previous batch's log is being fsynced.
//
// Connections: a write pool of one connection (every write in this process
// is serialised there, as River's SQLite driver recommends, so no
// connection waits on SQLITE_BUSY from its own process) opened with
// BEGIN IMMEDIATE so a transaction never has to upgrade a read lock, and a
// read pool of ReadConns connections (query_only) that read WAL snapshots
// concurrently with the writer. Other processes (radflow worker) open their
// own pools on the same file and wait up to BusyTimeout for the write lock.
type SQLite struct {
	path  string
	write *sql.DB
	read  *sql.DB
	phi   PHICipher
	fuzzy FuzzyIndex
	stmts hotStmts
	wal   walFile // for SyncWAL
}

// hotStmts are the statements run for every ingested instance, prepared
// once: modernc's driver compiles the SQL text of every ExecContext and
// QueryContext call anew (sqlite3_prepare_v2 was a quarter to a third of
// InsertInstanceTx's CPU in BenchmarkIngest). Inside a transaction they are used through tx.StmtContext,
// which reuses the statement already prepared on the write pool's one
// connection (database/sql prepares it again, once, on a connection that
// replaced a broken one). Schema changes (migrations, also by another
// process) are handled by SQLite: a prepared statement recompiles itself
// when the schema it was compiled against changed.
type hotStmts struct {
	// write pool
	insertInstance *sql.Stmt // insertInstanceSQL
	insertTerm     *sql.Stmt // insertTermSQL
	insertPrefix   *sql.Stmt // insertPrefixSQL
	queueResult    *sql.Stmt // queueResultSQL
	stageAudit     *sql.Stmt // stageAuditSQL
	markUnflushed  *sql.Stmt // markUnflushedSQL
	clearUnflushed *sql.Stmt // clearUnflushedSQL
	// read pool: prepared on each of its connections as they are used
	hasInstance *sql.Stmt // hasInstanceSQL

	all []*sql.Stmt // every statement prepare made, for closeStmts
}

const (
	insertInstanceSQL = `INSERT INTO instances (` + instanceColumns + `, patient_name_words,
		patient_birth_date, patient_id_enc, patient_name_enc, accession_number_enc, patient_birth_date_enc,
		patient_id_bidx, patient_name_bidx, accession_number_bidx)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sop_instance_uid) DO NOTHING`
	insertTermSQL = `INSERT INTO phi_terms (field, bidx, enc) VALUES (?, ?, ?)
		ON CONFLICT (field, bidx) DO NOTHING`
	insertPrefixSQL = `INSERT INTO phi_name_prefixes (token, name_bidx) VALUES (?, ?)
		ON CONFLICT (token, name_bidx) DO NOTHING`
	hasInstanceSQL = `SELECT count(*) FROM instances WHERE sop_instance_uid = ?`
)

// prepare prepares each statement of stmts on db and stores it where its
// key points (and in s.stmts.all, for closeStmts).
func (s *SQLite) prepare(ctx context.Context, db *sql.DB, stmts map[**sql.Stmt]string) error {
	for dst, q := range stmts {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("store: preparing statements: %w", err)
		}
		*dst = st
		s.stmts.all = append(s.stmts.all, st)
	}
	return nil
}

// closeStmts closes the prepared statements (before the pools). They stay
// set: a call after Close gets database/sql's "statement is closed" error,
// as it got "database is closed" before.
func (s *SQLite) closeStmts() error {
	var errs []error
	for _, st := range s.stmts.all {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

var _ InstanceStore = (*SQLite)(nil)
var _ ResultStore = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database file at path, applies
// pragmas and runs the embedded migrations. errors: the driver's, or a
// migration's (wrapped).
func OpenSQLite(ctx context.Context, path string, opts SQLiteOptions) (*SQLite, error) {
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if !opts.NoFdatasync && runtime.GOOS == "linux" {
		if _, err := sqlite.Fdatasync(true); err != nil {
			return nil, fmt.Errorf("store: enabling fdatasync: %w", err)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	common := url.Values{}
	common.Add("_pragma", "busy_timeout("+strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)+")")
	common.Add("_pragma", "foreign_keys(1)")
	// LIKE is case sensitive as in PostgreSQL, so wildcard matching is the
	// same on both; fuzzy matching lowercases both sides itself.
	common.Add("_pragma", "case_sensitive_like(1)")
	w := url.Values{}
	for k, v := range common {
		w[k] = append([]string(nil), v...)
	}
	w.Add("_pragma", "journal_mode(WAL)")
	w.Add("_pragma", "synchronous(FULL)")
	w.Set("_txlock", "immediate")
	if opts.PHI != nil {
		// Overwritten and deleted cells are zeroed, not left in free pages.
		w.Add("_pragma", "secure_delete(1)")
	}
	write, err := sql.Open("sqlite", fileURI(abs, w))
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", filepath.Base(abs), err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	s := &SQLite{path: abs, write: write, phi: opts.PHI, fuzzy: opts.PHIFuzzyIndex}
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("store: opening %s: %w", filepath.Base(abs), err)
	}
	if err := s.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}
	// After the migrations (the tables exist), before setupPHI (which
	// inserts terms and prefixes).
	if err := s.prepare(ctx, write, map[**sql.Stmt]string{
		&s.stmts.insertInstance: insertInstanceSQL,
		&s.stmts.insertTerm:     insertTermSQL,
		&s.stmts.insertPrefix:   insertPrefixSQL,
		&s.stmts.queueResult:    queueResultSQL,
		&s.stmts.stageAudit:     stageAuditSQL,
		&s.stmts.markUnflushed:  markUnflushedSQL,
		&s.stmts.clearUnflushed: clearUnflushedSQL,
	}); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.setupPHI(ctx); err != nil {
		s.Close()
		return nil, err
	}
	r := common
	r.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", fileURI(abs, r))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: opening %s: %w", filepath.Base(abs), err)
	}
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	s.read = read
	if err := s.prepare(ctx, read, map[**sql.Stmt]string{&s.stmts.hasInstance: hasInstanceSQL}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// fileURI returns an SQLite URI filename for the absolute path, with the
// path percent-escaped: a raw '#' or '?' in a directory name (Go's
// benchmark temp dirs have '#') would otherwise end the path and silently
// open another file.
func fileURI(abs string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// WriteDB returns the write pool (one connection): for River's driver
// (riversqlite.New) and for the transactions passed to the *Tx methods.
func (s *SQLite) WriteDB() *sql.DB { return s.write }

// ReadDB returns the read-only pool.
func (s *SQLite) ReadDB() *sql.DB { return s.read }

// Path returns the absolute path of the database file.
func (s *SQLite) Path() string { return s.path }

// FreeBytes returns the bytes available to this process on the volume
// holding the database.
func (s *SQLite) FreeBytes() (uint64, error) { return FreeBytes(filepath.Dir(s.path)) }

// Close closes the prepared statements and both pools.
func (s *SQLite) Close() error {
	errs := []error{s.closeStmts()}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close(), s.closeWAL())
	return errors.Join(errs...)
}

// InTx runs fn in a write transaction, committing when fn returns nil and
// rolling back otherwise (or when ctx is cancelled).
func (s *SQLite) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// migrate applies the embedded migrations/NNNN_name.sql files not yet
// recorded in radflow_migrations, each in its own transaction.
func (s *SQLite) migrate(ctx context.Context) error {
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS radflow_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return fmt.Errorf("store: migration file %q is not NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+name)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		err = s.InTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM radflow_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO radflow_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				version, name, formatTime(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", name, err)
		}
	}
	return nil
}

// timeLayout is fixed width so that text order is time order.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: bad timestamp %q: %w", s, err)
	}
	return t, nil
}

// BeginTx starts a write transaction (BEGIN IMMEDIATE on the single write
// connection). The caller commits or rolls back.
func (s *SQLite) BeginTx(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: begin: %w", err)
	}
	return tx, nil
}
