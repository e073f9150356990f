package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// walFile is the write-ahead log opened for SyncWAL.
type walFile struct {
	mu sync.Mutex
	f  *os.File
}

// BeginUnsyncedTx starts a write transaction (BEGIN IMMEDIATE on the write
// connection) whose COMMIT does not fsync the write-ahead log: the
// connection runs with synchronous=NORMAL until done is called, which
// restores synchronous=FULL and returns the connection to the pool. Call
// done exactly once, after Commit or Rollback.
//
// A transaction committed this way is atomic and survives a crash of the
// process (its WAL frames are in the operating system's page cache), and
// survives power loss once a SyncWAL that started after its COMMIT has
// returned nil. Until then it is visible to readers. Package ingest uses
// it to fsync one batch's WAL frames while the next batch is being built
// and committed: the single writer no longer waits for the device.
//
// errors: the driver's.
func (s *SQLite) BeginUnsyncedTx(ctx context.Context) (tx *sql.Tx, done func(), err error) {
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("store: begin: %w", err)
	}
	// The safety level cannot change inside a transaction: set it first.
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		s.restoreSync(conn)
		return nil, nil, fmt.Errorf("store: begin: %w", err)
	}
	if tx, err = conn.BeginTx(ctx, nil); err != nil {
		s.restoreSync(conn)
		return nil, nil, fmt.Errorf("store: begin: %w", err)
	}
	return tx, func() { s.restoreSync(conn) }, nil
}

// restoreSync sets synchronous=FULL again on conn and returns it to the
// pool; a connection that cannot be restored is discarded, so that no
// other transaction ever commits on it without its fsync.
func (s *SQLite) restoreSync(conn *sql.Conn) {
	if _, err := conn.ExecContext(context.Background(), "PRAGMA synchronous=FULL"); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = conn.Close()
}

// SyncWAL makes every transaction committed before the call durable: it
// fdatasyncs the write-ahead log file (<path>-wal). A missing log means
// SQLite checkpointed and removed it (the last connection closed), which
// it does only after syncing the database file: nothing is left to sync.
// Safe for concurrent use. errors: the open or fsync error (after a failed
// fsync the kernel may have dropped the pages: the caller must treat the
// commits as lost until SQLite recovers the log at the next open).
func (s *SQLite) SyncWAL() error {
	w := &s.wal
	w.mu.Lock()
	defer w.mu.Unlock()
	p := s.path + "-wal"
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: write-ahead log: %w", err)
	}
	if w.f != nil {
		if fst, err := w.f.Stat(); err != nil || !os.SameFile(st, fst) {
			w.f.Close()
			w.f = nil
		}
	}
	if w.f == nil {
		if w.f, err = os.Open(p); err != nil {
			return fmt.Errorf("store: write-ahead log: %w", err)
		}
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("store: fsync write-ahead log: %w", err)
	}
	return nil
}

// closeWAL closes the file SyncWAL keeps open.
func (s *SQLite) closeWAL() error {
	s.wal.mu.Lock()
	defer s.wal.mu.Unlock()
	if s.wal.f == nil {
		return nil
	}
	err := s.wal.f.Close()
	s.wal.f = nil
	return err
}
