package store

import (
	"context"
	"database/sql"
	"testing"
)

// The prepared statements keep working when the schema changes under
// them, here from another connection (as another process's migration
// would): SQLite recompiles them.
func TestPreparedStatementsSurviveSchemaChange(t *testing.T) {
	for _, opts := range []SQLiteOptions{{}, {PHI: testCipher(t, 3), PHIFuzzyIndex: FuzzyPrefix}} {
		old := testOpts
		testOpts = opts
		s := openTest(t)
		testOpts = old
		ctx := context.Background()
		insert := func(uid string) {
			t.Helper()
			in := &Instance{SOPInstanceUID: uid, SOPClassUID: "1.2", StudyInstanceUID: "9", SeriesInstanceUID: "9.1",
				PatientName: "Roe^Richard" + uid, PatientID: "P" + uid, Source: SourceSTOW, Size: 1, SHA256: "00", BlobKey: "k/" + uid}
			if err := s.InTx(ctx, func(tx *sql.Tx) error {
				created, err := s.InsertInstanceTx(ctx, tx, in)
				if err == nil && !created {
					t.Errorf("%s not created", uid)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if ok, err := s.HasInstance(ctx, uid); err != nil || !ok {
				t.Fatalf("HasInstance(%s): %v %v", uid, ok, err)
			}
		}
		insert("9.1.1")
		other, err := sql.Open("sqlite", fileURI(s.Path(), nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(`CREATE INDEX instances_test_modality ON instances (modality, sop_instance_uid)`); err != nil {
			t.Fatal(err)
		}
		other.Close()
		insert("9.1.2")
		if got, err := s.SearchInstances(ctx, Query{PatientID: "P9.1.2"}); err != nil || len(got) != 1 || got[0].PatientName != "Roe^Richard9.1.2" {
			t.Errorf("search after the schema change: %+v %v", got, err)
		}
		if ok, err := s.HasInstance(ctx, "9.9.9"); err != nil || ok {
			t.Errorf("HasInstance of a missing row: %v %v", ok, err)
		}
	}
}

// After Close the store's methods fail with an error, not a panic.
func TestClosedStoreErrors(t *testing.T) {
	s := openTest(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HasInstance(context.Background(), "1"); err == nil {
		t.Error("HasInstance after Close: no error")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
