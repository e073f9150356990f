package dicom

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	dt "github.com/radflow/radflow/internal/dicom/dicomtest"
)

const sharedDir = "../../../shared/dicom"

func shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(sharedDir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared DICOM file %s not available: %v", p, err)
	}
	return p
}

func mustParse(t *testing.T, rel string) *Instance {
	t.Helper()
	in, err := ParseFile(shared(t, rel))
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", rel, err)
	}
	return in
}

func topLevel(in *Instance) []*sdicom.Element {
	var out []*sdicom.Element
	for _, e := range in.Dataset.Elements {
		if e.Tag.Group != 0x0002 {
			out = append(out, e)
		}
	}
	return out
}

func TestKnownHardParse(t *testing.T) {
	kh := "known-hard/"
	t.Run("B02 UN sequence read as implicit VR LE", func(t *testing.T) {
		in := mustParse(t, kh+"B02_UN_sequence.dcm")
		l1 := in.Items(tag.Tag{Group: 0x4453, Element: 0x100C})
		if len(l1) != 1 {
			t.Fatalf("(4453,100C) items = %d, want 1", len(l1))
		}
		l2 := l1[0].Items(tag.Tag{Group: 0x0008, Element: 0x1115})
		if len(l2) != 1 {
			t.Fatalf("(0008,1115) items = %d, want 1", len(l2))
		}
		l3 := l2[0].Items(tag.Tag{Group: 0x0008, Element: 0x1199})
		if len(l3) != 1 {
			t.Fatalf("(0008,1199) items = %d, want 1", len(l3))
		}
		if got, want := l3[0].String(tag.ReferencedSOPInstanceUID), "1.2.840.113619.2.327.3.185221411.476.1398588726.278.80"; got != want {
			t.Errorf("Referenced SOP Instance UID = %q, want %q", got, want)
		}
	})
	t.Run("B02b private SQ in implicit VR", func(t *testing.T) {
		in := mustParse(t, kh+"B02b_priv_SQ_undef_len.dcm")
		items := in.Items(tag.Tag{Group: 0x3F03, Element: 0x1001})
		if len(items) != 1 {
			t.Fatalf("(3F03,1001) items = %d, want 1", len(items))
		}
		if got := items[0].String(tag.ReferringPhysicianName); got != "111111111111111" {
			t.Errorf("nested (0008,0090) = %q", got)
		}
		if got := items[0].Element(tag.Tag{Group: 0x3F03, Element: 0x1004}); got == nil {
			t.Errorf("element after the nested private elements not read")
		}
	})
	t.Run("B03 bad sequence", func(t *testing.T) {
		in := mustParse(t, kh+"B03_bad_sequence.dcm")
		if in.Element(tag.DerivationCodeSequence) == nil {
			t.Errorf("Derivation Code Sequence missing")
		}
		if got := in.Floats(tag.RescaleIntercept); len(got) != 1 || got[0] != -1024 {
			t.Errorf("Rescale Intercept = %v, want [-1024]", got)
		}
		if in.Int(tag.Rows, 0) != 512 || in.Int(tag.BitsStored, 0) != 12 {
			t.Errorf("Rows %d Bits Stored %d", in.Int(tag.Rows, 0), in.Int(tag.BitsStored, 0))
		}
	})
	t.Run("B04 stray item delimiter", func(t *testing.T) {
		in := mustParse(t, kh+"B04_synth_sq_stray_item_delimiter.dcm")
		if n := len(in.Items(tag.Tag{Group: 0x0023, Element: 0x1080})); n != 1 {
			t.Errorf("sequence items = %d, want 1", n)
		}
		if got := in.String(tag.Tag{Group: 0x0025, Element: 0x0010}); got != "CREATOR_0001" {
			t.Errorf("(0025,0010) = %q", got)
		}
		if got := in.Int(tag.Rows, 0); got != 2 {
			t.Errorf("Rows = %d, want 2", got)
		}
	})
	t.Run("B05 sequence delimiter with length FFFFFFFF", func(t *testing.T) {
		in := mustParse(t, kh+"B05_synth_seqdelim_len_ffffffff.dcm")
		pd := in.PixelData()
		if pd == nil || !pd.Encapsulated || len(pd.Fragments) != 1 || len(pd.Fragments[0]) != 64 || len(pd.BasicOffsetTable) != 0 {
			t.Fatalf("pixel data = %+v, want 1 fragment of 64 bytes and an empty BOT", pd)
		}
	})
	t.Run("B06 OV SV UV", func(t *testing.T) {
		in := mustParse(t, kh+"B06_synth_OV_SV_UV_vrs.dcm")
		if got := in.Ints(tag.Tag{Group: 0x0009, Element: 0x1001}); !slices.Equal(got, []int{-5}) {
			t.Errorf("SV = %v, want [-5]", got)
		}
		if got := in.Ints(tag.Tag{Group: 0x0009, Element: 0x1002}); !slices.Equal(got, []int{1099511627776}) {
			t.Errorf("UV = %v, want [1099511627776]", got)
		}
		off, lens := in.ExtendedOffsetTable()
		if !slices.Equal(off, []uint64{0}) || !slices.Equal(lens, []uint64{16}) {
			t.Errorf("Extended Offset Table = %v lengths %v, want [0] [16]", off, lens)
		}
		want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
		if pd := in.PixelData(); pd == nil || !bytes.Equal(pd.Native, want) {
			t.Errorf("Pixel Data = %+v, want 00..0F", pd)
		}
	})
	for _, f := range []string{"B09_ExplVR_LitEndNoMeta.dcm", "B09_ExplVR_BigEndNoMeta.dcm"} {
		t.Run("B09 no meta "+f, func(t *testing.T) {
			in := mustParse(t, kh+f)
			if n := len(topLevel(in)); n != 24 {
				t.Errorf("top-level elements = %d, want 24", n)
			}
			if in.Modality() != "RTPLAN" {
				t.Errorf("Modality = %q", in.Modality())
			}
			if in.SOPClassUID() != "1.2.840.10008.5.1.4.1.1.481.8" {
				t.Errorf("SOP Class UID = %q", in.SOPClassUID())
			}
			if in.BigEndian != strings.Contains(f, "BigEnd") {
				t.Errorf("BigEndian = %v", in.BigEndian)
			}
		})
	}
	t.Run("B10 implicit file meta without group length", func(t *testing.T) {
		in := mustParse(t, kh+"B10_54-implicit-file-meta-info.dcm")
		if in.TransferSyntaxUID != ImplicitVRLittleEndian {
			t.Errorf("transfer syntax = %q", in.TransferSyntaxUID)
		}
		if in.Modality() != "CT" || in.Int(tag.Rows, 0) != 512 || in.Int(tag.Columns, 0) != 512 || in.Int(tag.BitsStored, 0) != 12 || in.Int(tag.PixelRepresentation, -1) != 0 {
			t.Errorf("CT %s %dx%d bits %d rep %d", in.Modality(), in.Int(tag.Rows, 0), in.Int(tag.Columns, 0), in.Int(tag.BitsStored, 0), in.Int(tag.PixelRepresentation, -1))
		}
		if got := in.Floats(tag.RescaleIntercept); len(got) != 1 || got[0] != -1024 {
			t.Errorf("Rescale Intercept = %v", got)
		}
	})
	t.Run("B12 empty charset", func(t *testing.T) {
		in := mustParse(t, kh+"B12_empty_charset_LEI.dcm")
		if len(in.Warnings) != 0 {
			t.Errorf("warnings = %v", in.Warnings)
		}
		if got := in.Strings(tag.ImageType); !slices.Equal(got, []string{"ORIGINAL", "PRIMARY", "SINGLE PLANE"}) {
			t.Errorf("Image Type = %q", got)
		}
	})
	t.Run("B12b UTF-8 names", func(t *testing.T) {
		in := mustParse(t, kh+"B12b_synth_iso_ir_192_utf8.dcm")
		if got := in.String(tag.PatientName); got != "Müller^Jörg=山田^太郎" {
			t.Errorf("Patient's Name = %q", got)
		}
	})
	t.Run("B12b unknown charset warns and falls back", func(t *testing.T) {
		b, err := os.ReadFile(shared(t, kh+"B12b_synth_iso_ir_192_utf8.dcm"))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("ISO_IR 192"), []byte("ISO_IR 999"), 1)
		in, err := ParseBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := in.String(tag.PatientName); got != "Müller^Jörg=山田^太郎" {
			t.Errorf("Patient's Name = %q", got)
		}
		if len(in.Warnings) != 1 || !strings.Contains(in.Warnings[0], "ISO_IR 999") {
			t.Errorf("warnings = %q, want one naming ISO_IR 999", in.Warnings)
		}
	})
	t.Run("B14 deflated", func(t *testing.T) {
		in := mustParse(t, kh+"B14_image_dfl.dcm")
		if in.TransferSyntaxUID != DeflatedExplicitVRLittleEndian {
			t.Errorf("transfer syntax = %q", in.TransferSyntaxUID)
		}
		pd := in.PixelData()
		if pd == nil || len(pd.Native) < 512*512 {
			t.Fatalf("pixel data missing or short after inflate")
		}
	})
	t.Run("B22 truncated pixel data kept for pixel to report", func(t *testing.T) {
		in := mustParse(t, kh+"B22_MR_truncated.dcm")
		if pd := in.PixelData(); pd == nil || len(pd.Native) != 8130 {
			t.Fatalf("pixel data = %v bytes, want the 8130 present", len(in.PixelData().Native))
		}
	})
}

func TestCharacterSetVRs(t *testing.T) {
	// Latin-1 applies to PN but never to UI/CS.
	b := dt.Part10("1.2.840.10008.1.2.1", dt.Encoding{},
		dt.S(0x0008, 0x0005, "CS", "ISO_IR 100"),
		dt.Bytes(0x0010, 0x0010, "PN", []byte("M\xfcller^J\xf6rg")),
	)
	in, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.String(tag.PatientName); got != "Müller^Jörg" {
		t.Errorf("Patient's Name = %q, want Müller^Jörg", got)
	}
}

func TestEncodings(t *testing.T) {
	elems := []dt.Elem{
		dt.S(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		dt.S(0x0008, 0x0060, "CS", "OT"),
		{Group: 0x0008, Element: 0x1140, VR: "SQ", UndefinedLength: true, Items: [][]dt.Elem{{dt.S(0x0008, 0x1155, "UI", "1.2.3")}}},
		dt.US(0x0028, 0x0010, 7),
		{Group: 0x0028, Element: 0x1052, VR: "DS", Str: "-1024.5"},
		{Group: 0x0018, Element: 0x9306, VR: "FD", Raw: []byte{0, 0, 0, 0, 0, 0, 0xF0, 0x3F}},
	}
	cases := []struct {
		name string
		ts   string
		enc  dt.Encoding
		bare bool
	}{
		{"explicit LE", "1.2.840.10008.1.2.1", dt.Encoding{}, false},
		{"implicit LE", "1.2.840.10008.1.2", dt.Encoding{Implicit: true}, false},
		{"explicit BE", "1.2.840.10008.1.2.2", dt.Encoding{BigEndian: true}, false},
		{"bare implicit LE", "", dt.Encoding{Implicit: true}, true},
		{"bare explicit BE", "", dt.Encoding{BigEndian: true}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			es := elems
			if c.enc.BigEndian {
				es = slices.Clone(elems)
				es[5].Raw = []byte{0x3F, 0xF0, 0, 0, 0, 0, 0, 0}
			}
			var b []byte
			if c.bare {
				b = dt.Dataset(c.enc, es...)
			} else {
				b = dt.Part10(c.ts, c.enc, es...)
			}
			in, err := ParseBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			if in.Modality() != "OT" || in.Int(tag.Rows, 0) != 7 {
				t.Errorf("Modality %q Rows %d", in.Modality(), in.Int(tag.Rows, 0))
			}
			if got := in.Floats(tag.RescaleIntercept); !slices.Equal(got, []float64{-1024.5}) {
				t.Errorf("Rescale Intercept = %v", got)
			}
			if got := in.Floats(tag.Tag{Group: 0x0018, Element: 0x9306}); !slices.Equal(got, []float64{1}) {
				t.Errorf("FD = %v", got)
			}
			items := in.Items(tag.Tag{Group: 0x0008, Element: 0x1140})
			if len(items) != 1 || items[0].String(tag.ReferencedSOPInstanceUID) != "1.2.3" {
				t.Errorf("sequence not read: %d items", len(items))
			}
		})
	}
}

func TestNotDICOM(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("hello"), []byte(`{"00080005": {"vr": "CS"}}`), bytes.Repeat([]byte{0xFF}, 300)} {
		if _, err := ParseBytes(b); !errors.Is(err, ErrNotDICOM) {
			t.Errorf("ParseBytes(%q...) err = %v, want ErrNotDICOM", b[:min(len(b), 10)], err)
		}
	}
}

// TestHostileLengths: a length larger than the bytes left is ErrMalformed,
// and parsing never allocates far more than the input.
func TestHostileLengths(t *testing.T) {
	cases := map[string][]byte{
		"string length":   dt.Part10("1.2.840.10008.1.2.1", dt.Encoding{}, dt.S(0x0008, 0x0060, "CS", "CT"), dt.Elem{Group: 0x0010, Element: 0x0010, VR: "UT", Str: "X", Length: 0xFFFFFFF0}),
		"sequence length": dt.Part10("1.2.840.10008.1.2.1", dt.Encoding{}, dt.Elem{Group: 0x0008, Element: 0x1140, VR: "SQ", Items: [][]dt.Elem{{dt.S(0x0008, 0x1155, "UI", "1.2")}}, Length: 0x7FFFFFFF}),
		"implicit length": dt.Part10("1.2.840.10008.1.2", dt.Encoding{Implicit: true}, dt.S(0x0008, 0x0060, "CS", "CT"), dt.Elem{Group: 0x0008, Element: 0x0070, VR: "LO", Str: "X", Length: 0xFFFFFF00}),
		"fragment length": dt.Part10("1.2.840.10008.1.2.5", dt.Encoding{}, dt.S(0x0008, 0x0060, "CS", "CT"), dt.Elem{Group: 0x7FE0, Element: 0x0010, VR: "OB", Frags: [][]byte{{}, {1, 2, 3, 4}}}),
	}
	// Corrupt the fragment item length in place.
	fb := cases["fragment length"]
	i := bytes.LastIndex(fb, []byte{0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0})
	copy(fb[i+4:], []byte{0xF0, 0xFF, 0xFF, 0x7F})
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ParseBytes(b)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("parsing %d bytes allocated %d bytes", len(b), grew)
			}
		})
	}
}

// TestTruncatedEverywhere parses every prefix of a real file: each either
// parses or fails with ErrMalformed/ErrNotDICOM, never panics.
func TestTruncatedEverywhere(t *testing.T) {
	b, err := os.ReadFile(shared(t, "debian-python3-pydicom/MR_small.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n += 7 {
		_, err := ParseBytes(b[:n])
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotDICOM) {
			t.Fatalf("prefix %d: unspecific error %v", n, err)
		}
	}
}

func TestParseReader(t *testing.T) {
	p := shared(t, "debian-python3-pydicom/MR_small.dcm")
	b, _ := os.ReadFile(p)
	in, err := Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil || in.Modality() != "MR" || in.SOPInstanceUID() == "" {
		t.Fatalf("Parse: %v modality %q", err, in.Modality())
	}
	if _, err := Parse(bytes.NewReader(b[:100]), int64(len(b))); !errors.Is(err, ErrMalformed) {
		t.Errorf("short reader: err = %v, want ErrMalformed", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, rel := range []string{"debian-python3-pydicom/MR_small.dcm", "known-hard/B04_synth_sq_stray_item_delimiter.dcm", "known-hard/B05_synth_seqdelim_len_ffffffff.dcm", "known-hard/B06_synth_OV_SV_UV_vrs.dcm", "known-hard/B09_ExplVR_BigEndNoMeta.dcm", "known-hard/B02_UN_sequence.dcm"} {
		if b, err := os.ReadFile(filepath.Join(sharedDir, rel)); err == nil {
			f.Add(b)
		}
	}
	f.Add(dt.Part10("1.2.840.10008.1.2", dt.Encoding{Implicit: true}, dt.S(0x0008, 0x0060, "CS", "CT")))
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := ParseBytes(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotDICOM) {
				t.Fatalf("unspecific error: %v", err)
			}
			return
		}
		_ = in.String(tag.PatientName)
		_ = in.Items(tag.ReferencedImageSequence)
	})
}

func TestParseFileRefusesNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.dcm")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := ParseFile(fifo); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotDICOM) || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ParseFile blocked on a FIFO")
	}
	if _, err := ParseFile(dir); !errors.Is(err, ErrNotDICOM) {
		t.Fatalf("directory: err = %v", err)
	}
}
