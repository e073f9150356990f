package store

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

// TestMigration0003KeepsRowsAndAllowsSourceResult upgrades a version-2
// database holding an instance and a result that references it: both
// survive with their ids, foreign keys still hold, and an instance with
// source "result" can be inserted.
func TestMigration0003KeepsRowsAndAllowsSourceResult(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v2.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0001_init.sql", "0002_blob_key_index.sql"} {
		b, err := fs.ReadFile(migrationFS, "migrations/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`CREATE TABLE radflow_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
		`INSERT INTO radflow_migrations VALUES (1, '0001_init.sql', 'x'), (2, '0002_blob_key_index.sql', 'x')`,
		`INSERT INTO instances (sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid, source, size, sha256, blob_key, received_at)
			VALUES ('1.2', '1.2.840.10008.5.1.4.1.1.2', '1.3', '1.4', 'dimse', 10, 'ab', 'k/1.dcm', '2026-01-01T00:00:00.000000Z')`,
		`INSERT INTO results (id, sop_instance_uid, study_instance_uid, model, version, status, label, created_at, updated_at)
			VALUES (42, '1.2', '1.3', 'm', '1', 'done', 'NORMAL', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := OpenSQLite(ctx, path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, err := s.GetInstance(ctx, "1.2")
	if err != nil || in.Source != SourceDIMSE || in.Size != 10 || in.BlobKey != "k/1.dcm" {
		t.Fatalf("instance after migration: %+v %v", in, err)
	}
	rs, err := s.ListResults(ctx, "1.2", "")
	if err != nil || len(rs) != 1 || rs[0].ID != 42 || rs[0].Label != "NORMAL" {
		t.Fatalf("results after migration: %+v %v", rs, err)
	}
	var violations int
	if err := s.ReadDB().QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&violations); err != nil || violations != 0 {
		t.Fatalf("foreign key violations: %d %v", violations, err)
	}
	err = s.InTx(ctx, func(tx *sql.Tx) error {
		_, err := s.InsertInstanceTx(ctx, tx, &Instance{SOPInstanceUID: "2.25.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.33",
			StudyInstanceUID: "1.3", SeriesInstanceUID: "1.5", Source: SourceResult, Size: 1, SHA256: "cd", BlobKey: "k/2.dcm", ReceivedAt: time.Now()})
		return err
	})
	if err != nil {
		t.Fatalf("inserting a result SR instance: %v", err)
	}
	// The foreign key is still enforced.
	_, err = s.WriteDB().Exec(`INSERT INTO results (sop_instance_uid, study_instance_uid, model, version, status, created_at, updated_at)
		VALUES ('9.9', '1.3', 'm', '1', 'queued', 't', 't')`)
	if err == nil {
		t.Error("a result for a missing instance was accepted")
	}
}
