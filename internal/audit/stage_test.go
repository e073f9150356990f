package audit

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Stage returns a record as Append would seal it (time, event id, Detail
// without empty values, validated); AppendStaged appends such records in
// order, keeping their time and event id, and the chain verifies. A
// staged record that does not decode or validate appends nothing.
func TestStageThenAppendStaged(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 0)
	now := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	tr.cfg.Now = func() time.Time { return now }

	r1 := rec(1)
	r1.Time, r1.EventID = time.Time{}, ""
	r1.Detail["reason"] = "" // dropped, as by Append
	b1, err := tr.Stage(r1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := tr.Stage(rec(2))
	if err != nil {
		t.Fatal(err)
	}
	bad := rec(3)
	bad.Action = "Not An Action"
	if _, err := tr.Stage(bad); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Stage of an invalid record: %v", err)
	}
	if err := tr.AppendStaged(context.Background(), [][]byte{b1, []byte(`{"action":`)}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("AppendStaged of a broken record: %v", err)
	}
	if err := tr.Append(context.Background(), rec(4)); err != nil { // appended between staging and moving
		t.Fatal(err)
	}
	if err := tr.AppendStaged(context.Background(), [][]byte{b1, b2}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	var got []Record
	sum, err := Scan(dir, testKey, func(r Record) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 3 || len(got) != 3 {
		t.Fatalf("%d records (%+v), want 3", sum.Records, got)
	}
	if got[0].EventID != "ev-4" || got[1].Seq != 2 || got[2].Seq != 3 {
		t.Errorf("chain order: %s, %d, %d", got[0].EventID, got[1].Seq, got[2].Seq)
	}
	s1, s2 := got[1], got[2]
	if !s1.Time.Equal(now) || len(s1.EventID) != 36 || s1.Detail["reason"] != "" || len(s1.Detail) != 2 || s1.RequestID != "req-1" {
		t.Errorf("first staged record: %+v", s1)
	}
	if !s2.Time.Equal(rec(2).Time) || s2.EventID != "ev-2" || s2.Resource.StudyInstanceUID != studyRoot+".2" || s2.PrevHash != s1.Hash {
		t.Errorf("second staged record: %+v", s2)
	}
}

// Stage refuses while the trail has failed: nothing may then be recorded
// as stored.
func TestStageRefusesAfterClose(t *testing.T) {
	tr := openTrail(t, t.TempDir(), 0)
	tr.Close()
	if _, err := tr.Stage(rec(1)); err == nil {
		t.Fatal("Stage on a closed trail succeeded")
	}
}
