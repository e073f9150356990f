package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/audit"
)

// auditData makes a data directory with a trail of n records, one per
// day from 2025-03-01 (without serve's audit:started record), and returns
// it.
func auditData(t *testing.T, n int) string {
	t.Helper()
	data := t.TempDir()
	dir, keyFile := audit.Paths(data)
	key, err := audit.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := audit.Open(audit.Config{Dir: dir, Key: key, NoStartRecord: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		err := tr.Append(context.Background(), audit.Record{
			Time: time.Date(2025, 3, i, 9, 0, 0, 0, time.UTC), SubjectID: "dr.house", SubjectKind: audit.KindUser,
			Roles: []string{"radiologist"}, Action: "study:read", Outcome: audit.OutcomeSuccess, Protocol: audit.ProtocolHTTP,
			Resource: audit.Resource{Type: "study", StudyInstanceUID: fmt.Sprintf("1.2.3.%d", i)}, PurposeOfUse: "TREAT"})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	rc := run(args, &out, &errb)
	return rc, out.String(), errb.String()
}

func TestAuditVerifyCLI(t *testing.T) {
	data := auditData(t, 3)
	rc, out, errs := runCLI("audit", "verify", "--data", data)
	if rc != 0 || !regexp.MustCompile(`^ok: 3 records, last hash [0-9a-f]{64} \(seq 3, 1 segment files\)\n$`).MatchString(out) {
		t.Fatalf("rc %d out %q err %q", rc, out, errs)
	}
	// Edit record 2: reported with file:line and seq, exit 1.
	seg := filepath.Join(data, "audit", "audit-000001.jsonl")
	b, _ := os.ReadFile(seg)
	lines := strings.Split(string(b), "\n")
	lines[1] = strings.Replace(lines[1], "1.2.3.2", "1.2.3.9", 1)
	os.WriteFile(seg, []byte(strings.Join(lines, "\n")), 0o600)
	rc, out, _ = runCLI("audit", "verify", "--data", data)
	if rc != 1 || !strings.Contains(out, "FAILED after 1 good records: audit: modified at audit-000001.jsonl:2: hash mismatch at seq 2") {
		t.Fatalf("rc %d out %q", rc, out)
	}
	// A missing key is an error, and verify does not create one.
	other := t.TempDir()
	rc, _, errs = runCLI("audit", "verify", "--data", other)
	if rc != 1 || !strings.Contains(errs, "read key") {
		t.Fatalf("rc %d err %q", rc, errs)
	}
	if _, err := os.Stat(filepath.Join(other, "keys")); !os.IsNotExist(err) {
		t.Fatal("verify created a key directory")
	}
	// --data from the environment, as for serve.
	t.Setenv("RADFLOW_DATA", data)
	if rc, out, _ := runCLI("audit", "verify"); rc != 1 || !strings.Contains(out, "audit-000001.jsonl:2") {
		t.Fatalf("RADFLOW_DATA: rc %d out %q", rc, out)
	}
	if rc, _, _ := runCLI("audit", "frobnicate"); rc != 2 {
		t.Fatalf("unknown subcommand rc %d", rc)
	}
}

func TestAuditExportCLI(t *testing.T) {
	data := auditData(t, 4)
	rc, out, errs := runCLI("audit", "export", "--format", "fhir", "--since", "2025-03-03", "--data", data)
	if rc != 0 {
		t.Fatalf("rc %d err %q", rc, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(errs, "exported 2 records") {
		t.Fatalf("--since 2025-03-03 kept %d records: %q", len(lines), out)
	}
	for i, l := range lines {
		var ev audit.FHIRAuditEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		wantUID := fmt.Sprintf("urn:oid:1.2.3.%d", i+3)
		if ev.ResourceType != "AuditEvent" || ev.Type.Code != "110104" || ev.Outcome != "0" || len(ev.Entity) != 1 ||
			ev.Entity[0].What.Identifier.Value != wantUID || ev.Recorded != fmt.Sprintf("2025-03-0%dT09:00:00Z", i+3) {
			t.Errorf("line %d: %s", i, l)
		}
	}

	// Incremental by seq: after seq 3 of the 4 records, the last one.
	if !strings.Contains(errs, "last seq 4") {
		t.Fatalf("no last seq in %q", errs)
	}
	rc, out, errs = runCLI("audit", "export", "--format", "fhir", "--after-seq", "3", "--data", data)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); rc != 0 || len(lines) != 1 || !strings.Contains(lines[0], "urn:oid:1.2.3.4") || !strings.Contains(errs, "exported 1 records, last seq 4") {
		t.Fatalf("--after-seq 3: rc %d, %q, %q", rc, out, errs)
	}

	rc, out, errs = runCLI("audit", "export", "--format", "dicom", "--since", "2025-03-02T09:00:00Z", "--data", data)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if rc != 0 || len(lines) != 3 {
		t.Fatalf("rc %d, %d lines, err %q", rc, len(lines), errs)
	}
	for _, l := range lines {
		var m struct {
			XMLName xml.Name
			Event   struct {
				EventID struct {
					Code string `xml:"csd-code,attr"`
				}
			} `xml:"EventIdentification"`
		}
		if err := xml.Unmarshal([]byte(l), &m); err != nil || m.XMLName.Local != "AuditMessage" || m.Event.EventID.Code != "110104" {
			t.Fatalf("%v: %s", err, l)
		}
	}

	for _, bad := range [][]string{{"--format", "csv"}, {"--format", "fhir", "--since", "yesterday"}} {
		if rc, _, _ := runCLI(append(append([]string{"audit", "export"}, bad...), "--data", data)...); rc != 2 {
			t.Errorf("%v: rc %d, want 2", bad, rc)
		}
	}
}

// TestAuditVerifyVanishedAndAnchor: a deleted or emptied trail next to its
// key fails (exit 1); records cut from the end pass a plain verify but
// fail against the seq/hash printed before (--expect-seq/--expect-hash).
func TestAuditVerifyVanishedAndAnchor(t *testing.T) {
	data := t.TempDir()
	dir, keyFile := audit.Paths(data)
	key, err := audit.LoadOrCreateKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // two serve starts, one access each
		tr, err := audit.Open(audit.Config{Dir: dir, Key: key, Version: "v9.9.9"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Append(context.Background(), audit.Record{SubjectID: "dr.house", SubjectKind: audit.KindUser,
			Action: "study:read", Outcome: audit.OutcomeSuccess, Protocol: audit.ProtocolHTTP,
			Resource: audit.Resource{Type: "study", StudyInstanceUID: "1.2.3"}}); err != nil {
			t.Fatal(err)
		}
		tr.Close()
	}
	rc, out, errs := runCLI("audit", "verify", "--data", data)
	m := regexp.MustCompile(`^ok: 4 records, last hash ([0-9a-f]{64}) \(seq 4, 1 segment files\)\n$`).FindStringSubmatch(out)
	if rc != 0 || m == nil {
		t.Fatalf("rc %d out %q err %q", rc, out, errs)
	}
	h4 := m[1]
	rc, out, _ = runCLI("audit", "verify", "--data", data, "--expect-seq", "4", "--expect-hash", h4)
	if rc != 0 || !strings.HasSuffix(out, "anchor ok: seq 4 with hash "+h4+" present\n") {
		t.Fatalf("anchor on the intact trail: rc %d out %q", rc, out)
	}

	// Cut the last record: a plain verify cannot tell, the anchor can.
	seg := filepath.Join(dir, "audit-000001.jsonl")
	b, _ := os.ReadFile(seg)
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(seg, []byte(strings.Join(lines[:3], "")), 0o600)
	if rc, out, _ := runCLI("audit", "verify", "--data", data); rc != 0 || !strings.Contains(out, "ok: 3 records") {
		t.Fatalf("cut trail, no anchor: rc %d out %q", rc, out)
	}
	rc, out, _ = runCLI("audit", "verify", "--data", data, "--expect-seq", "4")
	if rc != 1 || !strings.Contains(out, "truncated: the trail ends at seq 3 but the anchor names seq 4") || !strings.Contains(out, "last good record: seq 3, hash ") {
		t.Fatalf("cut trail, --expect-seq 4: rc %d out %q", rc, out)
	}
	rc, out, _ = runCLI("audit", "verify", "--data", data, "--expect-hash", h4)
	if rc != 1 || !strings.Contains(out, "anchor-mismatch") {
		t.Fatalf("cut trail, --expect-hash: rc %d out %q", rc, out)
	}
	if rc, _, _ := runCLI("audit", "verify", "--data", data, "--expect-hash", "xyz"); rc != 2 {
		t.Fatalf("bad --expect-hash: rc %d, want 2", rc)
	}

	// Emptied, then deleted: exit 1, never "ok: 0 records".
	os.WriteFile(seg, nil, 0o600)
	rc, out, _ = runCLI("audit", "verify", "--data", data)
	if rc != 1 || !strings.HasPrefix(out, "FAILED: no audit records although the HMAC key exists") || !strings.Contains(out, "emptied or deleted") {
		t.Fatalf("emptied trail: rc %d out %q", rc, out)
	}
	os.RemoveAll(dir)
	rc, out, _ = runCLI("audit", "verify", "--data", data)
	if rc != 1 || !strings.Contains(out, "does not exist") {
		t.Fatalf("deleted trail: rc %d out %q", rc, out)
	}
}
