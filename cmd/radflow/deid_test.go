package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

func TestDeidTree(t *testing.T) {
	needShared(t)
	src := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(filepath.Join(sharedDICOM, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, to), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("debian-python3-pydicom/dicomdirtests/98892003/MR1/4919", "a/mr1.dcm")
	copyFile("debian-python3-pydicom/dicomdirtests/98892003/MR2/4950", "b/c/mr2.dcm")
	copyFile("known-hard/B22_MR_truncated.dcm", "bad.dcm")
	if err := os.WriteFile(filepath.Join(src, "notes.txt"), []byte("not dicom"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("a-project-secret-of-32-bytes-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	var out, errb bytes.Buffer
	rc := run([]string{"deid", "--retain-dates", "--keep-private", "ACME:10", "--project-secret-file", secret, src, dst}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d report lines, want 4:\n%s", len(lines), out.String())
	}
	var ok, skip, fail int
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "ok "):
			ok++
		case strings.HasPrefix(l, "skip "):
			skip++
		case strings.HasPrefix(l, "FAIL "):
			fail++
		}
	}
	// B22 (truncated pixel data) parses with a warning and is de-identified;
	// the text file is skipped.
	if ok != 3 || skip != 1 || fail != 0 || rc != 0 {
		t.Errorf("ok %d skip %d fail %d rc %d:\n%s%s", ok, skip, fail, rc, out.String(), errb.String())
	}
	a, err := dicom.ParseFile(filepath.Join(dst, "a/mr1.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := dicom.ParseFile(filepath.Join(dst, "b/c/mr2.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	if a.StudyInstanceUID() != b.StudyInstanceUID() || !strings.HasPrefix(a.StudyInstanceUID(), "2.25.") {
		t.Errorf("study UIDs %s / %s", a.StudyInstanceUID(), b.StudyInstanceUID())
	}
	orig, _ := dicom.ParseFile(filepath.Join(src, "a/mr1.dcm"))
	if got, want := a.String(tag.StudyDate), orig.String(tag.StudyDate); got != want || got == "" {
		t.Errorf("--retain-dates: Study Date %q, want %q", got, want)
	}
	if a.String(tag.PatientName) != "" {
		t.Error("Patient's Name not emptied")
	}
	// The same secret in a second run gives the same UIDs.
	dst2 := filepath.Join(t.TempDir(), "single.dcm")
	out.Reset()
	if rc := run([]string{"deid", "--project-secret-file", secret, filepath.Join(src, "a/mr1.dcm"), dst2}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, out.String())
	}
	c, err := dicom.ParseFile(dst2)
	if err != nil {
		t.Fatal(err)
	}
	if c.SOPInstanceUID() != a.SOPInstanceUID() {
		t.Error("same secret, different SOP Instance UID")
	}
	if c.String(tag.StudyDate) != "" {
		t.Error("Study Date kept without --retain-dates")
	}
}

func TestDeidFailuresAndUsage(t *testing.T) {
	needShared(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "trunc.dcm"), []byte("\x08\x00\x10\x00\x08\x00\x00\x00\x00\x00\x10\x00LO\xff\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"deid", src, t.TempDir()}, &out, &errb); rc != 1 || !strings.HasPrefix(out.String(), "FAIL ") {
		t.Errorf("rc %d, report %q", rc, out.String())
	}
	for _, args := range [][]string{{"deid"}, {"deid", "--profile", "other", "a", "b"}, {"deid", "--keep-private", "bad", "a", "b"}} {
		out.Reset()
		if rc := run(args, &out, &errb); rc != 2 {
			t.Errorf("%v: rc %d, want 2", args, rc)
		}
	}
}
