package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendVerify1000AcrossSegments(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 16<<10)
	for i := 1; i <= 1000; i++ {
		if err := tr.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	lastSeq, lastHash := tr.Last()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := Verify(dir, testKey)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if sum.Records != 1000 || sum.LastSeq != 1000 || lastSeq != 1000 || sum.LastHash != lastHash {
		t.Fatalf("summary %+v, trail last %d %s", sum, lastSeq, lastHash)
	}
	segs, _ := listSegments(dir)
	if sum.Segments != len(segs) || len(segs) < 10 {
		t.Fatalf("segments: summary %d, files %d; want ≥ 10 with 16 KiB segments", sum.Segments, len(segs))
	}
	for _, s := range segs {
		st, _ := os.Stat(filepath.Join(dir, s.name))
		if st.Size() > 16<<10 {
			t.Errorf("%s is %d bytes, over the 16 KiB limit", s.name, st.Size())
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", s.name, st.Mode().Perm())
		}
	}
	// Scan returns the records in order with their content.
	i := 0
	prev := ""
	if _, err := Scan(dir, testKey, func(r Record) error {
		i++
		want := rec(i)
		if r.Seq != uint64(i) || r.EventID != want.EventID || r.Resource.StudyInstanceUID != want.Resource.StudyInstanceUID ||
			!r.Time.Equal(want.Time) || r.PrevHash != prev || r.Detail["http_status"] != "200" || r.Roles[0] != "radiologist" {
			return fmt.Errorf("record %d = %+v", i, r)
		}
		prev = r.Hash
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != 1000 {
		t.Fatalf("scanned %d records", i)
	}
}

// tamperSetup writes 60 records into 4 KiB segments (several per file)
// and returns the directory and the second segment's lines.
func tamperSetup(t *testing.T) (string, []string) {
	dir := t.TempDir()
	writeTrail(t, dir, 60, 8<<10)
	lines := segLines(t, dir, segmentName(2))
	if len(lines) < 7 {
		t.Fatalf("segment 2 has %d lines", len(lines))
	}
	return dir, lines
}

func seqAt(t *testing.T, line string) uint64 {
	var r Record
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatal(err)
	}
	return r.Seq
}

func TestVerifyDetectsModifiedField(t *testing.T) {
	dir, lines := tamperSetup(t)
	seq := seqAt(t, lines[4])
	mod := strings.Replace(lines[4], `"outcome":"success"`, `"outcome":"denied"`, 1)
	if mod == lines[4] {
		t.Fatal("no outcome field to modify")
	}
	lines[4] = mod
	writeLines(t, dir, segmentName(2), lines)
	_, err := Verify(dir, testKey)
	p := wantProblem(t, err, ProblemModified, "audit-000002.jsonl", 5, seq)
	if !errors.Is(err, ErrTampered) || !strings.Contains(p.Error(), fmt.Sprintf("audit-000002.jsonl:5: hash mismatch at seq %d", seq)) {
		t.Fatalf("error text %q", p.Error())
	}
}

func TestVerifyDetectsDeletedLine(t *testing.T) {
	dir, lines := tamperSetup(t)
	seq := seqAt(t, lines[4])
	lines = append(lines[:4], lines[5:]...)
	writeLines(t, dir, segmentName(2), lines)
	_, err := Verify(dir, testKey)
	p := wantProblem(t, err, ProblemGap, "audit-000002.jsonl", 5, seq+1)
	if p.Expected != seq || !strings.Contains(p.Detail, fmt.Sprintf("seq gap %d→%d", seq-1, seq+1)) {
		t.Fatalf("problem %v", p)
	}
}

func TestVerifyDetectsSwappedLines(t *testing.T) {
	dir, lines := tamperSetup(t)
	seq := seqAt(t, lines[4])
	lines[4], lines[5] = lines[5], lines[4]
	writeLines(t, dir, segmentName(2), lines)
	_, err := Verify(dir, testKey)
	p := wantProblem(t, err, ProblemReordered, "audit-000002.jsonl", 5, seq+1)
	if p.Expected != seq {
		t.Fatalf("problem %v", p)
	}
}

func TestVerifyDetectsTruncatedLastLine(t *testing.T) {
	dir := t.TempDir()
	writeTrail(t, dir, 60, 4<<10)
	segs, _ := listSegments(dir)
	last := segs[len(segs)-1].name
	n := len(segLines(t, dir, last))
	path := filepath.Join(dir, last)
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()-20); err != nil {
		t.Fatal(err)
	}
	_, err := Verify(dir, testKey)
	wantProblem(t, err, ProblemTruncated, last, n, 0) // seq unparseable from a cut line
}

func TestVerifyDetectsPlainSHA256Recomputation(t *testing.T) {
	// An attacker without the key edits record 5 of segment 2 and rebuilds
	// the chain from there with plain SHA-256 (what a keyless hash chain
	// would accept).
	dir, lines := tamperSetup(t)
	seq := seqAt(t, lines[4])
	prev := ""
	if len(lines) > 3 {
		var r Record
		_ = json.Unmarshal([]byte(lines[3]), &r)
		prev = r.Hash
	}
	for i := 4; i < len(lines); i++ {
		var r Record
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			r.SubjectID = "someone.else"
		}
		r.PrevHash = prev
		r.Hash = ""
		body, _ := json.Marshal(r)
		sum := sha256.Sum256(body)
		r.Hash = hex.EncodeToString(sum[:])
		line := string(body[:len(body)-1]) + `,"hash":"` + r.Hash + `"}`
		lines[i] = line
		prev = r.Hash
	}
	writeLines(t, dir, segmentName(2), lines)
	_, err := Verify(dir, testKey)
	wantProblem(t, err, ProblemModified, "audit-000002.jsonl", 5, seq)
}

func TestVerifyDetectsBrokenLinkAndMissingSegment(t *testing.T) {
	// Two trails under the same key: segment 3 of B put in place of A's.
	// Every line of it has a valid HMAC and the right seq, but its first
	// prev_hash is not the last hash of A's segment 2.
	a, b := t.TempDir(), t.TempDir()
	writeTrail(t, a, 60, 4<<10)
	tr := openTrail(t, b, 4<<10)
	for i := 1; i <= 60; i++ {
		r := rec(i)
		r.EventID = fmt.Sprintf("other-%d", i)
		if err := tr.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	tr.Close()
	if len(segLines(t, a, segmentName(2))) != len(segLines(t, b, segmentName(2))) {
		t.Fatal("trails rotated differently")
	}
	data, _ := os.ReadFile(filepath.Join(b, segmentName(3)))
	firstSeq := seqAt(t, strings.SplitN(string(data), "\n", 2)[0])
	if err := os.WriteFile(filepath.Join(a, segmentName(3)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Verify(a, testKey)
	p := wantProblem(t, err, ProblemBrokenLink, "audit-000003.jsonl", 1, firstSeq)
	if !strings.Contains(p.Detail, "last record of audit-000002.jsonl") {
		t.Fatalf("detail %q", p.Detail)
	}

	if err := os.Remove(filepath.Join(a, segmentName(2))); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(a, testKey)
	wantProblem(t, err, ProblemMissingSegment, "audit-000002.jsonl", 0, 0)
}

func TestVerifyWrongKeyAndGarbledLine(t *testing.T) {
	dir := t.TempDir()
	writeTrail(t, dir, 5, 0)
	other := make([]byte, KeySize)
	_, err := Verify(dir, other)
	wantProblem(t, err, ProblemModified, "audit-000001.jsonl", 1, 1)

	lines := segLines(t, dir, segmentName(1))
	lines[2] = `{"seq":3,"not":"a record"}`
	writeLines(t, dir, segmentName(1), lines)
	_, err = Verify(dir, testKey)
	wantProblem(t, err, ProblemGarbled, "audit-000001.jsonl", 3, 3)
}

func TestResumeContinuesChain(t *testing.T) {
	dir := t.TempDir()
	writeTrail(t, dir, 5, 0)
	_, hash5 := func() (uint64, string) {
		s, err := Verify(dir, testKey)
		if err != nil {
			t.Fatal(err)
		}
		return s.LastSeq, s.LastHash
	}()
	tr := openTrail(t, dir, 0)
	if seq, h := tr.Last(); seq != 5 || h != hash5 {
		t.Fatalf("reopened at %d %s, want 5 %s", seq, h, hash5)
	}
	for i := 6; i <= 8; i++ {
		if err := tr.Append(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	tr.Close()
	var got []Record
	sum, err := Scan(dir, testKey, func(r Record) error { got = append(got, r); return nil })
	if err != nil || sum.Records != 8 || sum.Segments != 1 {
		t.Fatalf("verify after resume: %+v %v", sum, err)
	}
	if got[5].Seq != 6 || got[5].PrevHash != hash5 {
		t.Fatalf("record 6: seq %d prev %s, want prev %s", got[5].Seq, got[5].PrevHash, hash5)
	}
}

func TestResumeAfterRotationIntoEmptySegment(t *testing.T) {
	dir := t.TempDir()
	writeTrail(t, dir, 20, 4<<10)
	segs, _ := listSegments(dir)
	// A crash right after creating the next segment leaves it empty.
	if err := os.WriteFile(filepath.Join(dir, segmentName(segs[len(segs)-1].num+1)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tr := openTrail(t, dir, 4<<10)
	if err := tr.Append(context.Background(), rec(21)); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if sum, err := Verify(dir, testKey); err != nil || sum.Records != 21 {
		t.Fatalf("%+v %v", sum, err)
	}
}

func TestOpenRepairsTornTailAndRecordsIt(t *testing.T) {
	dir := t.TempDir()
	writeTrail(t, dir, 5, 0)
	path := filepath.Join(dir, segmentName(1))
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	torn := `{"seq":6,"time":"2025-`
	f.WriteString(torn)
	f.Close()
	_, err := Verify(dir, testKey)
	wantProblem(t, err, ProblemTruncated, "audit-000001.jsonl", 6, 0)

	tr := openTrail(t, dir, 0)
	tr.Close()
	var last Record
	sum, err := Scan(dir, testKey, func(r Record) error { last = r; return nil })
	if err != nil || sum.Records != 6 {
		t.Fatalf("%+v %v", sum, err)
	}
	if last.Action != ActionAuditRecovered || last.Detail["truncated_bytes"] != fmt.Sprint(len(torn)) ||
		last.Detail["segment"] != "audit-000001.jsonl" || last.SubjectKind != KindSystem {
		t.Fatalf("recovery record %+v", last)
	}
}

func TestOpenRefusesTamperedTail(t *testing.T) {
	dir := t.TempDir()
	writeTrail(t, dir, 5, 0)
	lines := segLines(t, dir, segmentName(1))
	lines[4] = strings.Replace(lines[4], "dr.house", "dr.wilson", 1)
	writeLines(t, dir, segmentName(1), lines)
	_, err := Open(Config{Dir: dir, Key: testKey})
	wantProblem(t, err, ProblemModified, "audit-000001.jsonl", 5, 5)
}

func TestConcurrentAppenders(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 32<<10)
	const workers, each = 8, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r := rec(i)
				r.EventID = fmt.Sprintf("w%d-%d", w, i)
				if err := tr.Append(context.Background(), r); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	tr.Close()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var n uint64
	sum, err := Scan(dir, testKey, func(r Record) error {
		n++
		if r.Seq != n {
			return fmt.Errorf("seq %d at position %d", r.Seq, n)
		}
		seen[r.EventID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != workers*each || len(seen) != workers*each {
		t.Fatalf("%d records, %d distinct events, want %d", sum.Records, len(seen), workers*each)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("event %s written %d times", id, c)
		}
	}
}

func TestAppendWriteFailureIsStickyError(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 0)
	if err := tr.Append(context.Background(), rec(1)); err != nil {
		t.Fatal(err)
	}
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	good := tr.f
	tr.f = full // every write now fails with ENOSPC
	err = tr.Append(context.Background(), rec(2))
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("Append on a full disk = %v, want ErrFailed", err)
	}
	if err := tr.Append(context.Background(), rec(3)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after failure = %v, want sticky ErrFailed", err)
	}
	if err := tr.Err(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Err() = %v, want ErrFailed", err)
	}
	tr.Close()
	good.Close()
	if sum, err := Verify(dir, testKey); err != nil || sum.Records != 1 {
		t.Fatalf("%+v %v", sum, err)
	}
}

func TestAppendFailsInReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 1024) // every record or two needs a new segment
	if err := tr.Append(context.Background(), rec(1)); err != nil {
		t.Fatal(err)
	}
	makeReadOnly(t, dir)
	var err error
	for i := 2; i < 6 && err == nil; i++ {
		err = tr.Append(context.Background(), rec(i))
	}
	if !errors.Is(err, ErrFailed) || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Append into a read-only directory = %v, want ErrFailed wrapping a permission error", err)
	}
	if err2 := tr.Append(context.Background(), rec(9)); !errors.Is(err2, ErrFailed) {
		t.Fatalf("Append after failure = %v, want sticky ErrFailed", err2)
	}
	tr.Close()
	if _, err := Open(Config{Dir: filepath.Join(dir, "sub"), Key: testKey}); err == nil {
		t.Fatal("Open under a read-only directory succeeded")
	}
}

func TestAppendAfterCloseAndBadConfig(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 0)
	if err := tr.Err(); err != nil {
		t.Fatalf("Err() of an open trail = %v", err)
	}
	if _, err := Open(Config{Dir: dir, Key: testKey}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of one directory = %v, want ErrLocked", err)
	}
	tr.Close()
	if err := tr.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Err() after Close = %v", err)
	}
	if err := tr.Append(context.Background(), rec(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if _, err := Open(Config{Dir: dir, Key: []byte("short")}); !errors.Is(err, ErrKey) {
		t.Fatalf("short key: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr = openTrail(t, dir, 0)
	defer tr.Close()
	// A cancelled context (the client went away) does not lose the record.
	if err := tr.Append(ctx, rec(1)); err != nil {
		t.Fatalf("Append with a cancelled context = %v, want the record written", err)
	}
	if seq, _ := tr.Last(); seq != 1 {
		t.Fatalf("after Append with a cancelled context the trail ends at seq %d, want 1", seq)
	}
}

func TestAppendFillsTimeAndEventID(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.FixedZone("CEST", 2*3600))
	tr, err := Open(Config{Dir: dir, Key: testKey, Now: func() time.Time { return now }, NoStartRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rec(1)
	r.EventID, r.Time = "", time.Time{}
	r.Detail = map[string]string{"http_status": "200", "route": ""} // empty: dropped
	if err := tr.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	line := segLines(t, dir, segmentName(1))[0]
	if !strings.Contains(line, `"time":"2025-06-07T06:09:10.123456789Z"`) {
		t.Fatalf("time not UTC RFC 3339 with nanoseconds: %s", line)
	}
	var got Record
	json.Unmarshal([]byte(line), &got)
	if len(got.Detail) != 1 || got.Detail["http_status"] != "200" {
		t.Fatalf("detail %v, want only http_status", got.Detail)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(got.EventID) {
		t.Fatalf("event id %q is not a UUID v4", got.EventID)
	}
}

// makeReadOnly makes dir refuse new entries: mode 0500, or for root (who
// ignores modes) the ext4 immutable attribute; the test is skipped when
// neither works.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	probe := func() bool {
		f, err := os.Create(filepath.Join(dir, "probe"))
		if err != nil {
			return false
		}
		f.Close()
		os.Remove(filepath.Join(dir, "probe"))
		return true
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if !probe() {
		return
	}
	if err := exec.Command("chattr", "+i", dir).Run(); err != nil {
		t.Skipf("cannot make %s read-only as this user (root without chattr): %v", dir, err)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
	if probe() {
		t.Skip("cannot make the directory read-only")
	}
}
