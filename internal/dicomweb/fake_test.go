package dicomweb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/pixel"
	"github.com/suyashkumar/dicom/pkg/tag"
)

const sharedDir = "../../../shared/dicom/debian-python3-pydicom"

// Known values of the shared files (read with pydicom).
const (
	ctSOP    = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
	ctStudy  = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
	ctSeries = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
	mrSOP    = "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457"
	mrStudy  = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
	rgbStudy = "1.2.826.0.1.3680043.8.498.12406831542731051035295345080039845114"
	rgbSOP   = "1.2.826.0.1.3680043.8.498.49043964482360854182530167603505525116"
)

func readShared(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir, name))
	if os.IsNotExist(err) {
		t.Skipf("shared DICOM data absent (%s): run with /work/shared laid out beside the repo", sharedDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeStore is an in-memory Ingester and Catalog.
type fakeStore struct {
	mu    sync.Mutex
	files map[string][]byte
	rows  map[string]InstanceRow
	busy  bool
	calls int
}

func newFakeStore() *fakeStore {
	return &fakeStore{files: map[string][]byte{}, rows: map[string]InstanceRow{}}
}

func (f *fakeStore) Ingest(ctx context.Context, r io.Reader, src Source) (Stored, error) {
	f.mu.Lock()
	f.calls++
	busy := f.busy
	f.mu.Unlock()
	if busy {
		return Stored{}, ErrBusy
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return Stored{}, fmt.Errorf("%w: reading: %w", ErrInvalidInstance, err)
	}
	in, err := dicom.ParseBytes(b)
	if err != nil {
		return Stored{}, fmt.Errorf("%w: %w", ErrInvalidInstance, err)
	}
	st := Stored{SOPClassUID: in.SOPClassUID(), SOPInstanceUID: in.SOPInstanceUID(), StudyInstanceUID: in.StudyInstanceUID(), SeriesInstanceUID: in.SeriesInstanceUID()}
	if st.SOPInstanceUID == "" || st.StudyInstanceUID == "" {
		return st, fmt.Errorf("%w: no SOP Instance UID or Study Instance UID", ErrInvalidInstance)
	}
	if in.PixelData() != nil {
		// package dicom tolerates truncated pixel data; a store must not.
		if _, err := pixel.Decode(in); errors.Is(err, pixel.ErrTruncated) {
			return st, fmt.Errorf("%w: %w", ErrInvalidInstance, err)
		}
	}
	if src.StudyInstanceUID != "" && src.StudyInstanceUID != st.StudyInstanceUID {
		return st, ErrStudyMismatch
	}
	row := InstanceRow{
		Series: SeriesRow{
			Study: StudyRow{
				StudyInstanceUID: st.StudyInstanceUID, StudyDate: in.String(tag.StudyDate), StudyTime: in.String(tag.StudyTime),
				AccessionNumber: in.String(tag.AccessionNumber), PatientID: in.String(tag.PatientID), PatientName: in.String(tag.PatientName),
				ModalitiesInStudy: []string{in.Modality()}, NumberOfStudyRelatedSeries: 1, NumberOfStudyRelatedInstances: 1,
			},
			SeriesInstanceUID: st.SeriesInstanceUID, Modality: in.Modality(), SeriesNumber: in.String(tag.SeriesNumber), NumberOfSeriesRelatedInstances: 1,
		},
		SOPClassUID: st.SOPClassUID, SOPInstanceUID: st.SOPInstanceUID, InstanceNumber: in.String(tag.InstanceNumber),
		TransferSyntaxUID: in.TransferSyntaxUID, Rows: in.Int(tag.Rows, 0), Columns: in.Int(tag.Columns, 0),
		NumberOfFrames: in.Int(tag.NumberOfFrames, 1), BitsAllocated: in.Int(tag.BitsAllocated, 0), Size: int64(len(b)),
	}
	f.mu.Lock()
	f.files[st.SOPInstanceUID] = b
	f.rows[st.SOPInstanceUID] = row
	f.mu.Unlock()
	return st, nil
}

func (f *fakeStore) sorted() []InstanceRow {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []InstanceRow
	for _, r := range f.rows {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SOPInstanceUID < out[j].SOPInstanceUID })
	return out
}

func (f *fakeStore) SearchStudies(ctx context.Context, q Query) ([]StudyRow, error) {
	var out []StudyRow
	for _, r := range f.sorted() {
		if q.MatchStudy(r.Series.Study) && !slices.ContainsFunc(out, func(s StudyRow) bool { return s.StudyInstanceUID == r.Series.Study.StudyInstanceUID }) {
			out = append(out, r.Series.Study)
		}
	}
	return Page(out, q), nil
}

func (f *fakeStore) SearchSeries(ctx context.Context, q Query) ([]SeriesRow, error) {
	var out []SeriesRow
	for _, r := range f.sorted() {
		if q.MatchSeries(r.Series) && !slices.ContainsFunc(out, func(s SeriesRow) bool { return s.SeriesInstanceUID == r.Series.SeriesInstanceUID }) {
			out = append(out, r.Series)
		}
	}
	return Page(out, q), nil
}

func (f *fakeStore) SearchInstances(ctx context.Context, q Query) ([]InstanceRow, error) {
	var out []InstanceRow
	for _, r := range f.sorted() {
		if q.MatchInstance(r) {
			out = append(out, r)
		}
	}
	return Page(out, q), nil
}

func (f *fakeStore) Instance(ctx context.Context, sop string) (InstanceRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rows[sop]
	if !ok {
		return r, ErrNotFound
	}
	return r, nil
}

func (f *fakeStore) OpenInstance(ctx context.Context, sop string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[sop]
	if !ok {
		return nil, ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// part10 builds a minimal Explicit VR Little Endian Part 10 file from
// (tag, VR, value) triples of short-form text VRs, in the order given.
func part10(elems ...any) []byte {
	var ds bytes.Buffer
	put := func(w *bytes.Buffer, t tag.Tag, vr, v string) {
		if len(v)%2 == 1 {
			if vr == "UI" {
				v += "\x00"
			} else {
				v += " "
			}
		}
		binary.Write(w, binary.LittleEndian, t.Group)
		binary.Write(w, binary.LittleEndian, t.Element)
		w.WriteString(vr)
		binary.Write(w, binary.LittleEndian, uint16(len(v)))
		w.WriteString(v)
	}
	for i := 0; i+2 < len(elems); i += 3 {
		put(&ds, elems[i].(tag.Tag), elems[i+1].(string), elems[i+2].(string))
	}
	var meta bytes.Buffer
	put(&meta, tag.TransferSyntaxUID, "UI", explicitVRLittle)
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	var gl bytes.Buffer
	binary.Write(&gl, binary.LittleEndian, uint16(2))
	binary.Write(&gl, binary.LittleEndian, uint16(0))
	gl.WriteString("UL")
	binary.Write(&gl, binary.LittleEndian, uint16(4))
	binary.Write(&gl, binary.LittleEndian, uint32(meta.Len()))
	out.Write(gl.Bytes())
	out.Write(meta.Bytes())
	out.Write(ds.Bytes())
	return out.Bytes()
}
