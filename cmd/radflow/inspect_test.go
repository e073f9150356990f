package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const sharedDICOM = "../../../shared/dicom"

func needShared(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(sharedDICOM); err != nil {
		t.Skipf("shared DICOM test data not found at %s (run from a checkout beside ../shared): %v", sharedDICOM, err)
	}
}

func inspectJSON(t *testing.T, paths ...string) ([]map[string]any, int) {
	t.Helper()
	var out, errb bytes.Buffer
	rc := run(append([]string{"inspect", "--json"}, paths...), &out, &errb)
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs, rc
}

func TestInspectJSONValues(t *testing.T) {
	needShared(t)
	kh := sharedDICOM + "/known-hard/"
	recs, rc := inspectJSON(t,
		kh+"B03_bad_sequence.dcm",
		kh+"B15_MR_small_bigendian.dcm",
		kh+"B22_MR_truncated.dcm",
		sharedDICOM+"/cornerstoneWADOImageLoader/MANIFEST.tsv",
	)
	if rc != 1 {
		t.Errorf("exit status %d, want 1 (two files fail)", rc)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	keys := []string{"path", "transfer_syntax_uid", "sop_class_uid", "modality", "rows", "columns", "frames",
		"samples_per_pixel", "photometric_interpretation", "bits_allocated", "bits_stored", "pixel_representation",
		"min", "max", "sum", "error"}
	for _, k := range keys {
		if _, ok := recs[0][k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	b03 := recs[0]
	for k, want := range map[string]any{
		"transfer_syntax_uid": "1.2.840.10008.1.2.4.70", "modality": "CT", "rows": 512.0, "columns": 512.0,
		"frames": 1.0, "bits_stored": 12.0, "min": 13.0, "max": 2267.0, "sum": 248348502.0, "error": nil,
	} {
		if b03[k] != want {
			t.Errorf("B03 %s = %v, want %v", k, b03[k], want)
		}
	}
	mr := recs[1]
	if mr["min"] != 127.0 || mr["max"] != 2145.0 || mr["sum"] != 2125338.0 || mr["pixel_representation"] != 1.0 {
		t.Errorf("B15 big endian = %v", mr)
	}
	if e, _ := recs[2]["error"].(string); !strings.Contains(e, "needs 8192 bytes, has 8130") {
		t.Errorf("B22 error = %q", e)
	}
	if recs[2]["min"] != nil {
		t.Errorf("B22 min = %v, want null", recs[2]["min"])
	}
	if e, _ := recs[3]["error"].(string); !strings.Contains(e, "not a DICOM file") {
		t.Errorf("non-DICOM error = %q", e)
	}
}

func TestInspectDirectoryAndTable(t *testing.T) {
	needShared(t)
	var out, errb bytes.Buffer
	rc := run([]string{"inspect", sharedDICOM + "/suyashkumar-dicom"}, &out, &errb)
	s := out.String()
	if !strings.HasPrefix(s, "PATH") || !strings.Contains(s, "1.dcm") {
		t.Fatalf("table:\n%s", s)
	}
	// The folder holds MANIFEST.tsv and text files: they are reported, so the run fails.
	if rc != 1 {
		t.Errorf("exit status %d, want 1", rc)
	}
}
