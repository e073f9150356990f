package audit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenWritesStartRecord: every Open appends audit:started (system
// subject, version detail, no PHI, no pid) and logs the last seq/hash.
func TestOpenWritesStartRecord(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for i := 0; i < 2; i++ {
		tr, err := Open(Config{Dir: dir, Key: testKey, Version: "v1.4.0 rc/1", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Append(context.Background(), rec(i+1)); err != nil {
			t.Fatal(err)
		}
		tr.Close()
	}
	var got []Record
	sum, err := Scan(dir, testKey, func(r Record) error { got = append(got, r); return nil })
	if err != nil || sum.Records != 4 {
		t.Fatalf("Scan: %+v %v", sum, err)
	}
	for _, i := range []int{0, 2} {
		r := got[i]
		if r.Seq != uint64(i+1) || r.Action != ActionAuditStarted || r.SubjectKind != KindSystem || r.SubjectID != "radflow" ||
			r.Outcome != OutcomeSuccess || r.Protocol != ProtocolInternal || len(r.Detail) != 1 || r.Detail["version"] != "v1.4.0_rc_1" {
			t.Errorf("record %d: %+v", i+1, r)
		}
	}
	if got[1].Action != "study:read" || got[3].Action != "study:read" {
		t.Errorf("appended records: %s, %s", got[1].Action, got[3].Action)
	}
	// The log holds an anchor: the seq and hash of each start record.
	for _, r := range []Record{got[0], got[2]} {
		want := "last_hash=" + r.Hash
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	ev := Classify(got[0])
	if ev.ID != EventApplicationActivity || len(ev.Types) != 1 || ev.Types[0] != TypeApplicationStart || ev.Action != "E" || ev.Outcome != "0" {
		t.Errorf("Classify(audit:started) = %+v", ev)
	}
	if v := softwareVersion(""); !reVersion.MatchString(v) {
		t.Errorf("build version %q does not match the version detail syntax", v)
	}
}

// TestVerifyEmptyTrail: a trail without records, an emptied segment and a
// deleted directory are ProblemEmpty, never "ok: 0 records".
func TestVerifyEmptyTrail(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 0) // NoStartRecord: an empty segment file
	tr.Close()
	_, err := Verify(dir, testKey)
	p := wantProblem(t, err, ProblemEmpty, "", 0, 0)
	if !errors.Is(err, ErrTampered) || !strings.Contains(p.Error(), "emptied or deleted") {
		t.Fatalf("empty trail: %v", err)
	}

	dir = t.TempDir()
	writeTrail(t, dir, 3, 0)
	if err := os.Truncate(filepath.Join(dir, segmentName(1)), 0); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(dir, testKey)
	wantProblem(t, err, ProblemEmpty, "", 0, 0)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(dir, testKey)
	if p := wantProblem(t, err, ProblemEmpty, "", 0, 0); !strings.Contains(p.Detail, "does not exist") {
		t.Fatalf("deleted directory: %v", p)
	}
}

// TestVerifyAnchor: records cut from the end leave a valid chain that
// Verify accepts; the anchor catches it.
func TestVerifyAnchor(t *testing.T) {
	dir := t.TempDir()
	writeTrail(t, dir, 10, 0)
	full, err := Verify(dir, testKey)
	if err != nil || full.LastSeq != 10 {
		t.Fatalf("%+v %v", full, err)
	}
	lines := segLines(t, dir, segmentName(1))
	var h7 Record
	if _, err := Scan(dir, testKey, func(r Record) error {
		if r.Seq == 7 {
			h7 = r
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Intact trail: seq+hash, seq only, hash only (upper case accepted).
	for _, a := range []Anchor{{Seq: 10, Hash: full.LastHash}, {Seq: 10}, {Hash: strings.ToUpper(full.LastHash)}, {Seq: 7, Hash: h7.Hash}} {
		if sum, err := VerifyAnchor(dir, testKey, a); err != nil || sum.LastSeq != 10 {
			t.Errorf("anchor %+v on the intact trail: %+v %v", a, sum, err)
		}
	}
	// Cut the last 3 records: Verify says ok, the anchor does not.
	writeLines(t, dir, segmentName(1), lines[:7])
	if sum, err := Verify(dir, testKey); err != nil || sum.LastSeq != 7 || sum.LastHash != h7.Hash {
		t.Fatalf("cut trail: %+v %v (a shorter valid chain)", sum, err)
	}
	_, err = VerifyAnchor(dir, testKey, Anchor{Seq: 10, Hash: full.LastHash})
	p := wantProblem(t, err, ProblemTruncated, "", 0, 7)
	if p.Expected != 10 || !strings.Contains(p.Detail, "records 8..10") {
		t.Fatalf("cut trail against seq 10: %v (expected %d)", p, p.Expected)
	}
	_, err = VerifyAnchor(dir, testKey, Anchor{Hash: full.LastHash})
	wantProblem(t, err, ProblemAnchor, "", 0, 0)
	// An anchor at the new end still matches; a wrong hash at seq 7 does not.
	if _, err := VerifyAnchor(dir, testKey, Anchor{Seq: 7, Hash: h7.Hash}); err != nil {
		t.Fatalf("anchor at seq 7: %v", err)
	}
	_, err = VerifyAnchor(dir, testKey, Anchor{Seq: 7, Hash: full.LastHash})
	wantProblem(t, err, ProblemAnchor, "", 0, 7)
	// Bad anchors.
	for _, a := range []Anchor{{}, {Hash: "abc"}, {Seq: 3, Hash: strings.Repeat("g", 64)}} {
		if _, err := VerifyAnchor(dir, testKey, a); !errors.Is(err, ErrInvalidAnchor) {
			t.Errorf("anchor %+v: %v, want ErrInvalidAnchor", a, err)
		}
	}
}

// TestAppendTimeoutBounded: Append waits at most Config.AppendTimeout,
// whatever the caller's context.
func TestAppendTimeoutBounded(t *testing.T) {
	tr, err := Open(Config{Dir: t.TempDir(), Key: testKey, Logger: quietLog, NoStartRecord: true, AppendTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	err = tr.Append(context.Background(), rec(1))
	if !errors.Is(err, ErrAppendTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append with a 1 ns bound = %v, want ErrAppendTimeout", err)
	}
	ctx, cancel := DetachedContext(canceled(), time.Hour)
	defer cancel()
	if ctx.Err() != nil {
		t.Fatalf("DetachedContext of a cancelled context is done: %v", ctx.Err())
	}
	if d, ok := ctx.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("DetachedContext deadline %v %v, want about an hour", d, ok)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
