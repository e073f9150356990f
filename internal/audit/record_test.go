package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestNoPHIField(t *testing.T) {
	// The record schema has no place for patient identity: check every
	// field name of Record and Resource (and their JSON names).
	banned := []string{"patient", "name", "birth", "accession", "mrn", "sex", "address"}
	for _, typ := range []reflect.Type{reflect.TypeOf(Record{}), reflect.TypeOf(Resource{})} {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			for _, b := range banned {
				n := strings.ToLower(f.Name + " " + f.Tag.Get("json"))
				if strings.Contains(n, b) && f.Name != "ClientAddress" {
					t.Errorf("%s.%s (%s) looks like a PHI field", typ.Name(), f.Name, f.Tag.Get("json"))
				}
			}
		}
	}
}

func TestAppendRejectsPHIInDetailAndUIDs(t *testing.T) {
	dir := t.TempDir()
	tr := openTrail(t, dir, 0)
	defer tr.Close()
	const name = "DOE^JOHN"
	cases := map[string]func(r *Record){
		"detail key patient_name":   func(r *Record) { r.Detail = map[string]string{"patient_name": name} },
		"detail key PatientID":      func(r *Record) { r.Detail = map[string]string{"PatientID": "12345"} },
		"detail reason with name":   func(r *Record) { r.Detail = map[string]string{"reason": name} },
		"detail route with name":    func(r *Record) { r.Detail = map[string]string{"route": "/patients/" + name} },
		"study uid holding a name":  func(r *Record) { r.Resource.StudyInstanceUID = name },
		"sop uid holding a name":    func(r *Record) { r.Resource.SOPInstanceUID = "1.2.3^" + name },
		"model holding a name":      func(r *Record) { r.Resource.Model = name },
		"purpose holding a name":    func(r *Record) { r.PurposeOfUse = name },
		"request id holding a name": func(r *Record) { r.RequestID = name },
		"uid longer than 64":        func(r *Record) { r.Resource.StudyInstanceUID = strings.Repeat("1.", 40) + "1" },
	}
	for label, mutate := range cases {
		r := rec(1)
		mutate(&r)
		err := tr.Append(context.Background(), r)
		if !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: Append = %v, want ErrInvalidRecord", label, err)
			continue
		}
		if strings.Contains(err.Error(), "DOE") || strings.Contains(err.Error(), "12345") {
			t.Errorf("%s: error echoes the value: %v", label, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, segmentName(1)))
	if len(b) != 0 {
		t.Fatalf("rejected records reached the trail: %q", b)
	}
}

func TestValidateAcceptsAndRejects(t *testing.T) {
	ok := rec(1)
	ok.Resource = Resource{Type: "result", StudyInstanceUID: "1.2.3", SeriesInstanceUID: "1.2.3.4", SOPInstanceUID: "1.2.3.4.5",
		Model: "chest-xray@1.2.0"}
	ok.BreakGlass, ok.BreakGlassReason = true, "stroke alert, attending unavailable"
	ok.Detail = map[string]string{"dimse_status": "A700", "calling_ae": "CT_SCANNER_1", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
		"duration_ms": "12.5", "operation": "c-store", "segment": "audit-000001.jsonl",
		"route": "GET /dicomweb/studies/{study}/series/{series}"}
	ok.ClientAddress = "[2001:db8::1]:104"
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid record rejected: %v", err)
	}
	bad := map[string]func(r *Record){
		"no subject kind":            func(r *Record) { r.SubjectKind = "" },
		"no subject for success":     func(r *Record) { r.SubjectID = "" },
		"bad action":                 func(r *Record) { r.Action = "Study Read" },
		"bad outcome":                func(r *Record) { r.Outcome = "ok" },
		"bad protocol":               func(r *Record) { r.Protocol = "ftp" },
		"bad client address":         func(r *Record) { r.ClientAddress = "pacs.example.org:104" },
		"reason without break glass": func(r *Record) { r.BreakGlass = false },
		"control char in subject":    func(r *Record) { r.SubjectID = "a\nb" },
		"bad role":                   func(r *Record) { r.Roles = []string{"Admin!"} },
		"bad http status":            func(r *Record) { r.Detail = map[string]string{"http_status": "2000"} },
		"AE title too long":          func(r *Record) { r.Detail = map[string]string{"calling_ae": "ABCDEFGHIJKLMNOPQ"} },
	}
	for label, mutate := range bad {
		r := ok
		r.Detail = map[string]string{}
		for k, v := range ok.Detail {
			r.Detail[k] = v
		}
		mutate(&r)
		if err := r.Validate(); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("%s: Validate = %v, want ErrInvalidRecord", label, err)
		}
	}
	// Unauthenticated events may lack a subject.
	u := rec(1)
	u.SubjectID, u.SubjectKind, u.Outcome, u.Roles = "", KindAnonymous, OutcomeUnauthenticated, nil
	if err := u.Validate(); err != nil {
		t.Fatalf("unauthenticated record rejected: %v", err)
	}
}

func TestVerifyRejectsUnknownFieldAddedToLine(t *testing.T) {
	// A PHI field smuggled into the file is garbled, not silently ignored.
	dir := t.TempDir()
	writeTrail(t, dir, 3, 0)
	lines := segLines(t, dir, segmentName(1))
	lines[1] = strings.Replace(lines[1], `{"seq":2,`, `{"seq":2,"patient_name":"DOE^JOHN",`, 1)
	writeLines(t, dir, segmentName(1), lines)
	_, err := Verify(dir, testKey)
	wantProblem(t, err, ProblemGarbled, "audit-000001.jsonl", 2, 2)
}

func TestLoadOrCreateKey(t *testing.T) {
	data := t.TempDir()
	_, keyFile := Paths(data)
	k1, err := LoadOrCreateKey(keyFile)
	if err != nil || len(k1) != KeySize {
		t.Fatalf("%x %v", k1, err)
	}
	st, _ := os.Stat(keyFile)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(filepath.Dir(keyFile))
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %v, want 0700", dst.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(keyFile)
	if err != nil || string(k1) != string(k2) {
		t.Fatal("second load returned another key")
	}
	os.WriteFile(keyFile, []byte("abcd\n"), 0o600)
	if _, err := LoadKey(keyFile); !errors.Is(err, ErrKey) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := LoadKey(filepath.Join(data, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing key: %v", err)
	}
}
