package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

var testKey = bytes.Repeat([]byte{0x5a}, KeySize)

const studyRoot = "1.2.826.0.1.3680043.8.498"

// rec returns a valid record for event i.
func rec(i int) Record {
	return Record{
		Time:             time.Date(2025, 3, 1, 12, 0, 0, i*1000, time.UTC),
		EventID:          fmt.Sprintf("ev-%d", i),
		SubjectID:        "dr.house",
		SubjectKind:      KindUser,
		Roles:            []string{"radiologist"},
		Organisation:     "Princeton-Plainsboro",
		Action:           "study:read",
		Resource:         Resource{Type: "study", StudyInstanceUID: fmt.Sprintf("%s.%d", studyRoot, i)},
		Outcome:          OutcomeSuccess,
		ClientAddress:    "10.1.2.3:50000",
		PurposeOfUse:     "TREAT",
		PolicyDecisionID: fmt.Sprintf("dec-%d", i),
		RequestID:        fmt.Sprintf("req-%d", i),
		Protocol:         ProtocolHTTP,
		Detail:           map[string]string{"http_status": "200", "http_method": "GET"},
	}
}

func openTrail(t testing.TB, dir string, maxSeg int64) *Trail {
	t.Helper()
	tr, err := Open(Config{Dir: dir, Key: testKey, MaxSegmentBytes: maxSeg, Logger: quietLog, NoStartRecord: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return tr
}

// writeTrail appends records 1..n sequentially and closes the trail.
func writeTrail(t testing.TB, dir string, n int, maxSeg int64) {
	t.Helper()
	tr := openTrail(t, dir, maxSeg)
	for i := 1; i <= n; i++ {
		if err := tr.Append(context.Background(), rec(i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func segLines(t testing.TB, dir, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func writeLines(t testing.TB, dir, name string, lines []string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wantProblem checks that err is a *Problem of kind at file:line with seq.
func wantProblem(t *testing.T, err error, kind ProblemKind, file string, line int, seq uint64) *Problem {
	t.Helper()
	p, ok := err.(*Problem)
	if !ok {
		t.Fatalf("error = %v (%T), want *Problem %s", err, err, kind)
	}
	if p.Kind != kind || p.File != file || p.Line != line || p.Seq != seq {
		t.Fatalf("problem = {%s %s:%d seq %d} (%v), want {%s %s:%d seq %d}", p.Kind, p.File, p.Line, p.Seq, p, kind, file, line, seq)
	}
	return p
}
