package store

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"
)

func synchronous(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var v int
	if err := q.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// An unsynced transaction commits at synchronous=NORMAL (1), is visible to
// readers at once, and leaves the write connection at FULL (2) for every
// other transaction, after COMMIT as after ROLLBACK; SyncWAL then fsyncs
// the log.
func TestBeginUnsyncedTx(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if got := synchronous(t, s.write); got != 2 {
		t.Fatalf("write pool synchronous=%d before, want 2 (FULL)", got)
	}
	for _, commit := range []bool{true, false} {
		tx, done, err := s.BeginUnsyncedTx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := synchronous(t, tx); got != 1 {
			t.Errorf("inside the transaction synchronous=%d, want 1 (NORMAL)", got)
		}
		uid := "1.2.3.1"
		if !commit {
			uid = "1.2.3.2"
		}
		in := &Instance{SOPInstanceUID: uid, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.0",
			Source: SourceDIMSE, Size: 1, SHA256: "00", BlobKey: "k-" + uid, ReceivedAt: time.Now().UTC()}
		if _, err := s.InsertInstanceTx(ctx, tx, in); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		done()
		if got := synchronous(t, s.write); got != 2 {
			t.Errorf("after done (commit %v) synchronous=%d, want 2 (FULL)", commit, got)
		}
		has, err := s.HasInstance(ctx, uid)
		if err != nil || has != commit {
			t.Errorf("commit %v: HasInstance %v %v", commit, has, err)
		}
	}
	if err := s.SyncWAL(); err != nil {
		t.Fatal(err)
	}
	// The log SyncWAL holds open is the live one: replaced under it (as
	// after the last connection closed and a new one created it), it
	// reopens the new file.
	old := s.wal.f
	if old == nil {
		t.Fatal("SyncWAL kept no file open")
	}
	if err := s.SyncWAL(); err != nil || s.wal.f != old {
		t.Errorf("second SyncWAL reopened the same log (%v)", err)
	}
	st, _ := os.Stat(s.path + "-wal")
	b, err := os.ReadFile(s.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	tmp := s.path + "-wal.new"
	if err := os.WriteFile(tmp, b, st.Mode()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path+"-wal"); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncWAL(); err != nil {
		t.Fatal(err)
	}
	if s.wal.f == old {
		t.Error("SyncWAL kept syncing a log file that is no longer the database's")
	}
}

func TestSyncWALWithoutLog(t *testing.T) {
	s := &SQLite{path: t.TempDir() + "/none.db"}
	if err := s.SyncWAL(); err != nil {
		t.Errorf("no log to sync: %v", err)
	}
}
