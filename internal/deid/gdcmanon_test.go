package deid

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/radflow/radflow/internal/dicom"
)

// gdcmanonFiles are the real files compared with GDCM's gdcmanon.
var gdcmanonFiles = []string{
	"debian-python3-pydicom/CT_small.dcm",
	"debian-python3-pydicom/MR_small.dcm",
	"nhsx-nih-chestxray/sample.dcm",
	"cornerstoneWADOImageLoader/no-pixel-data.dcm",
}

const knownDiffsFile = "testdata/gdcmanon_known_differences.tsv"

// outcome classifies what happened to one top-level attribute.
func outcome(orig, got *sdicom.Element) string {
	switch {
	case orig == nil && got == nil:
		return "absent"
	case orig == nil:
		return "added"
	case got == nil:
		return "removed"
	}
	oe, ge := empty(orig), empty(got)
	switch {
	case ge && oe:
		return "kept"
	case ge:
		return "emptied"
	}
	if oi, ok := seqItems(orig); ok {
		gi, _ := seqItems(got)
		if len(oi) == len(gi) && fmt.Sprint(flat(oi)) == fmt.Sprint(flat(gi)) {
			return "kept"
		}
		return "replaced"
	}
	if same(orig, got) {
		return "kept"
	}
	return "replaced"
}

func flat(items [][]*sdicom.Element) []string {
	var out []string
	for _, it := range items {
		for _, e := range it {
			if sub, ok := seqItems(e); ok {
				out = append(out, e.Tag.String())
				out = append(out, flat(sub)...)
				continue
			}
			out = append(out, e.Tag.String()+"="+fmt.Sprint(e.Value.GetValue()))
		}
	}
	return out
}

func tagName(t tag.Tag) string {
	if r, ok := Lookup(t); ok && r.Pattern == "" {
		return r.Name
	}
	if t.Group%2 == 1 {
		return "private"
	}
	if info, err := tag.Find(t); err == nil {
		return info.Name
	}
	return "?"
}

// TestCompareGdcmanon runs `gdcmanon --continue -e --certificate` (GDCM's
// Basic Profile implementation) and radflow on the same real files, and
// compares the fate of every top-level attribute. The set of differences
// must equal testdata/gdcmanon_known_differences.tsv, each explained in
// docs/security.md ("Comparison with GDCM gdcmanon"): a new difference
// (or a vanished one) fails. Set
// RADFLOW_UPDATE_GDCMANON=1 to rewrite the file after reviewing.
func TestCompareGdcmanon(t *testing.T) {
	gdcmanon, err := exec.LookPath("gdcmanon")
	if err != nil {
		t.Skip("gdcmanon not installed (Debian package libgdcm-tools); skipping the comparison with GDCM")
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed; gdcmanon's Basic Profile needs a certificate")
	}
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	if out, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
		"-out", cert, "-days", "1", "-subj", "/CN=radflow-deid-test").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	var diffs []string
	for _, rel := range gdcmanonFiles {
		src := sharedFile(t, rel)
		g := filepath.Join(dir, filepath.Base(rel))
		if out, err := exec.Command(gdcmanon, "--continue", "-e", "--certificate", cert, src, g).CombinedOutput(); err != nil {
			t.Fatalf("gdcmanon %s: %v: %s", rel, err, out)
		}
		orig, err := dicom.ParseFile(src)
		if err != nil {
			t.Fatal(err)
		}
		gd, err := dicom.ParseFile(g)
		if err != nil {
			t.Fatalf("gdcmanon output does not parse: %v", err)
		}
		b, err := Apply(orig, Options{ProjectSecret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		rf, err := dicom.ParseBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		tags := map[tag.Tag]bool{}
		for _, in := range []*dicom.Instance{orig, gd, rf} {
			for _, e := range in.Dataset.Elements {
				if e.Tag.Group != 0x0002 {
					tags[e.Tag] = true
				}
			}
		}
		seen := map[string]bool{}
		for tg := range tags {
			o := orig.Element(tg)
			r, gg := outcome(o, rf.Element(tg)), outcome(o, gd.Element(tg))
			if r == gg {
				continue
			}
			key := tg.String()
			if tg.Group%2 == 1 {
				key = "(odd group)" // private attributes: one line per file and outcome pair
			}
			l := fmt.Sprintf("%s\t%s\t%s\tradflow=%s\tgdcmanon=%s", filepath.Base(rel), key, tagName(tg), r, gg)
			if !seen[l] {
				seen[l] = true
				diffs = append(diffs, l)
			}
		}
	}
	sort.Strings(diffs)
	got := strings.Join(diffs, "\n") + "\n"
	if os.Getenv("RADFLOW_UPDATE_GDCMANON") == "1" {
		if err := os.WriteFile(knownDiffsFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(knownDiffsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, []byte(got)) {
		wl, gl := lines(string(want)), lines(got)
		for l := range gl {
			if !wl[l] {
				t.Errorf("new difference: %s", l)
			}
		}
		for l := range wl {
			if !gl[l] {
				t.Errorf("known difference no longer seen: %s", l)
			}
		}
	}
	if len(diffs) == 0 {
		t.Error("no differences at all: the comparison is not comparing")
	}
}

func lines(s string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		m[l] = true
	}
	return m
}
