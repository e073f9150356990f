package dicomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// loaded returns a server with CT_small, MR_small and SC_rgb_rle_2frame stored.
func loaded(t *testing.T) (*httptest.Server, *fakeStore) {
	t.Helper()
	files := [][]byte{readShared(t, "CT_small.dcm"), readShared(t, "MR_small.dcm"), readShared(t, "SC_rgb_rle_2frame.dcm")}
	srv, fs := newTestServer(t, Config{})
	for _, f := range files {
		if _, err := fs.Ingest(context.Background(), bytes.NewReader(f), Source{}); err != nil {
			t.Fatal(err)
		}
	}
	return srv, fs
}

func get(t *testing.T, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func qido(t *testing.T, url string) []Dataset {
	t.Helper()
	resp, b := get(t, url, MediaDICOMJSON)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != MediaDICOMJSON {
		t.Fatalf("%s: %d %q %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var out []Dataset
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return out
}

func studyUIDs(ds []Dataset) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String(tag.StudyInstanceUID))
	}
	return out
}

func TestQIDOStudiesFilters(t *testing.T) {
	srv, _ := loaded(t)
	base := srv.URL + "/dicomweb"
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{rgbStudy, ctStudy, mrStudy}},
		{"PatientID=1CT1", []string{ctStudy}},
		{"00100020=4MR1", []string{mrStudy}},
		{"PatientName=CompressedSamples%5ECT1", []string{ctStudy}},
		{"PatientName=compressedsamples", nil}, // exact: case and whole value
		{"PatientName=Compressed*", []string{ctStudy, mrStudy}},
		{"PatientName=compressedsamples&fuzzymatching=true", []string{ctStudy, mrStudy}},
		{"PatientName=mr1%5Ecomp&fuzzymatching=true", []string{mrStudy}},
		{"StudyDate=20040101-20040601", []string{ctStudy}},
		{"StudyDate=20040826", []string{mrStudy}},
		{"StudyDate=-20050101", []string{ctStudy, mrStudy}},
		{"StudyDate=20100101-", []string{rgbStudy}},
		{"ModalitiesInStudy=MR", []string{mrStudy}},
		{"StudyInstanceUID=" + ctStudy + "," + mrStudy, []string{ctStudy, mrStudy}},
		{"limit=1&offset=1", []string{ctStudy}},
	}
	for _, tc := range cases {
		got := studyUIDs(qido(t, base+"/studies?"+tc.query))
		// the fake catalog orders by SOP Instance UID: RGB < CT < MR
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%q: got %v want %v", tc.query, got, tc.want)
		}
	}
}

func TestQIDOJSONShape(t *testing.T) {
	srv, _ := loaded(t)
	resp, b := get(t, srv.URL+"/dicomweb/studies?PatientID=1CT1&includefield=00081030,StudyDescription", "")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var raw []map[string]map[string]any
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 1 {
		t.Fatalf("%v %s", err, b)
	}
	d := raw[0]
	if d["00100010"]["vr"] != "PN" {
		t.Fatalf("PatientName: %v", d["00100010"])
	}
	pn := d["00100010"]["Value"].([]any)[0].(map[string]any)
	if pn["Alphabetic"] != "CompressedSamples^CT1" {
		t.Fatalf("PN value %v", pn)
	}
	if v := d["0020000D"]; v["vr"] != "UI" || v["Value"].([]any)[0] != ctStudy {
		t.Fatalf("StudyInstanceUID %v", v)
	}
	if v := d["00201208"]; v["vr"] != "IS" || v["Value"].([]any)[0] != 1.0 {
		t.Fatalf("NumberOfStudyRelatedInstances %v (must be a JSON number)", v)
	}
	if v := d["00080061"]; v["Value"].([]any)[0] != "CT" {
		t.Fatalf("ModalitiesInStudy %v", v)
	}
	if _, has := d["00080050"]["Value"]; has {
		t.Fatalf("empty AccessionNumber must have no Value: %v", d["00080050"])
	}
	if !strings.HasSuffix(d["00081190"]["Value"].([]any)[0].(string), "/dicomweb/studies/"+ctStudy) {
		t.Fatalf("RetrieveURL %v", d["00081190"])
	}

	// Series and instance levels.
	ser := qido(t, srv.URL+"/dicomweb/studies/"+ctStudy+"/series")
	if len(ser) != 1 || ser[0].String(tag.SeriesInstanceUID) != ctSeries || ser[0].String(tag.Modality) != "CT" {
		t.Fatalf("series %v", ser)
	}
	if _, ok := ser[0][TagKey(tag.PatientID)]; ok {
		t.Fatal("study-scoped series query repeats study attributes")
	}
	all := qido(t, srv.URL+"/dicomweb/series?Modality=OT")
	if len(all) != 1 || all[0].String(tag.PatientID) != "ID1" {
		t.Fatalf("/series?Modality=OT %v", all)
	}
	inst := qido(t, srv.URL+"/dicomweb/studies/"+ctStudy+"/series/"+ctSeries+"/instances")
	if len(inst) != 1 || inst[0].String(tag.SOPInstanceUID) != ctSOP || inst[0].Int(tag.Rows, 0) != 128 ||
		inst[0].String(tag.AvailableTransferSyntaxUID) != explicitVRLittle {
		t.Fatalf("instances %v", inst)
	}
	if got := qido(t, srv.URL+"/dicomweb/instances?SOPInstanceUID="+rgbSOP); len(got) != 1 || got[0].Int(tag.NumberOfFrames, 0) != 2 {
		t.Fatalf("/instances by UID %v", got)
	}
	if got := qido(t, srv.URL+"/dicomweb/studies?PatientID=nobody"); len(got) != 0 {
		t.Fatalf("no match must be [] got %v", got)
	}
}

func TestQIDOBadQueries(t *testing.T) {
	srv, _ := loaded(t)
	for _, q := range []string{"NotAKeyword=1", "00100020x=1", "limit=-1", "StudyDate=2004", "StudyDate=20040101-2005", "StudyInstanceUID=abc", "fuzzymatching=maybe", "includefield=Bogus", "PatientID=a&PatientID=b"} {
		resp, b := get(t, srv.URL+"/dicomweb/studies?"+q, "")
		if resp.StatusCode != 400 || !strings.Contains(string(b), "error") {
			t.Errorf("%q: %d %s", q, resp.StatusCode, b)
		}
		if strings.Contains(string(b), "1CT1") {
			t.Errorf("%q: error echoes a value", q)
		}
	}
	// A real attribute that is not a matching key here: ignored, Warning 299.
	resp, b := get(t, srv.URL+"/dicomweb/studies?PatientBirthDate=19700101", "")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Warning"), "PatientBirthDate") {
		t.Fatalf("%d %q %s", resp.StatusCode, resp.Header.Get("Warning"), b)
	}
	resp, _ = get(t, srv.URL+"/dicomweb/studies?limit=2", "")
	if !strings.Contains(resp.Header.Get("Warning"), "offset=2") {
		t.Fatalf("missing more-results warning: %q", resp.Header.Get("Warning"))
	}
}

func readMultipart(t *testing.T, resp *http.Response, body []byte) ([][]byte, []string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		t.Fatalf("content type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts [][]byte
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts, types
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, b)
		types = append(types, p.Header.Get("Content-Type"))
	}
}

func TestWADORetrieveByteIdentical(t *testing.T) {
	ct := readShared(t, "CT_small.dcm")
	srv, _ := newTestServer(t, Config{})
	c := &Client{BaseURL: srv.URL + "/dicomweb"}
	r, err := c.Store(context.Background(), "", bytes.NewReader(ct))
	if err != nil || r.HTTPStatus != 200 {
		t.Fatal(err, r)
	}
	for _, url := range []string{r.Referenced[0].RetrieveURL, r.RetrieveURL, srv.URL + "/dicomweb/studies/" + ctStudy + "/series/" + ctSeries} {
		resp, b := get(t, url, `multipart/related; type=application/dicom; transfer-syntax=*`)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", url, resp.StatusCode, b)
		}
		parts, types := readMultipart(t, resp, b)
		if len(parts) != 1 || !bytes.Equal(parts[0], ct) {
			t.Fatalf("%s: %d parts, identical=%v", url, len(parts), len(parts) == 1 && bytes.Equal(parts[0], ct))
		}
		if types[0] != "application/dicom; transfer-syntax="+explicitVRLittle {
			t.Fatalf("part type %q", types[0])
		}
	}
	if resp, _ := get(t, r.Referenced[0].RetrieveURL, "application/json"); resp.StatusCode != 406 {
		t.Fatalf("unacceptable Accept: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/dicomweb/studies/"+ctStudy+"/series/9.9/instances/"+ctSOP, ""); resp.StatusCode != 404 {
		t.Fatalf("instance in wrong series: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/dicomweb/studies/1.2.3", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown study: %d", resp.StatusCode)
	}
}

func TestWADOMetadata(t *testing.T) {
	srv, _ := loaded(t)
	url := srv.URL + "/dicomweb/studies/" + ctStudy + "/series/" + ctSeries + "/instances/" + ctSOP
	resp, b := get(t, url+"/metadata", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != MediaDICOMJSON {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var ds []Dataset
	if err := json.Unmarshal(b, &ds); err != nil || len(ds) != 1 {
		t.Fatalf("%v %s", err, b)
	}
	d := ds[0]
	if d.String(tag.PatientName) != "CompressedSamples^CT1" || d.Int(tag.Rows, 0) != 128 || d.Int(tag.BitsAllocated, 0) != 16 {
		t.Fatalf("PatientName %q Rows %d", d.String(tag.PatientName), d.Int(tag.Rows, 0))
	}
	if v := d[TagKey(tag.RescaleIntercept)]; v.VR != "DS" || v.Value[0] != -1024.0 {
		t.Fatalf("RescaleIntercept %+v", v)
	}
	pd := d[TagKey(tag.PixelData)]
	if pd.BulkDataURI != url+"/frames/1" || pd.Value != nil || pd.InlineBinary != nil {
		t.Fatalf("PixelData %+v", pd)
	}
	if _, ok := d[TagKey(tag.TransferSyntaxUID)]; ok {
		t.Fatal("file meta in metadata")
	}
	// Study-level metadata of the two-frame RGB study.
	resp, b = get(t, srv.URL+"/dicomweb/studies/"+rgbStudy+"/metadata", "")
	if err := json.Unmarshal(b, &ds); err != nil || len(ds) != 1 || !strings.HasSuffix(ds[0][TagKey(tag.PixelData)].BulkDataURI, "/frames/1,2") {
		t.Fatalf("%d %v %s", resp.StatusCode, err, b)
	}
}

func TestWADORendered(t *testing.T) {
	srv, _ := loaded(t)
	ct := srv.URL + "/dicomweb/studies/" + ctStudy + "/series/" + ctSeries + "/instances/" + ctSOP
	// Expected values computed with pydicom/numpy: HU = stored - 1024,
	// PS3.3 C.11.2.1.2.1 linear window c=500 w=2000, round(255*y).
	resp, b := get(t, ct+"/rendered?window=500,2000,linear", "image/png")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != MediaPNG {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() != 128 || r.Dy() != 128 {
		t.Fatalf("size %v", r)
	}
	sum := 0
	for y := 0; y < 128; y++ {
		for x := 0; x < 128; x++ {
			g, _, _, _ := img.At(x, y).RGBA()
			sum += int(g >> 8)
		}
	}
	g, _, _, _ := img.At(64, 64).RGBA()
	g2, _, _, _ := img.At(100, 10).RGBA()
	if g>>8 != 179 || g2>>8 != 90 || sum != 921462 {
		t.Fatalf("pixel (64,64)=%d (want 179), (100,10)=%d (want 90), sum %d (want 921462)", g>>8, g2>>8, sum)
	}
	// MR_small: its own Window Center/Width 600/1600.
	resp, b = get(t, srv.URL+"/dicomweb/studies/"+mrStudy+"/series/1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457/instances/"+mrSOP+"/rendered", "")
	img, err = png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(resp.StatusCode, err)
	}
	sum = 0
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			g, _, _, _ := img.At(x, y).RGBA()
			sum += int(g >> 8)
		}
	}
	if sum != 463120 {
		t.Fatalf("MR default window sum %d, want 463120", sum)
	}
	if resp, _ := get(t, ct+"/rendered", "image/jpeg"); resp.Header.Get("Content-Type") != MediaJPEG {
		t.Fatalf("jpeg: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, q := range []string{"window=1", "window=a,b", "window=40,400,cubic", "window=40,0", "quality=0"} {
		if resp, _ := get(t, ct+"/rendered?"+q, ""); resp.StatusCode != 400 {
			t.Errorf("%s: %d", q, resp.StatusCode)
		}
	}
	if resp, _ := get(t, ct+"/rendered", "image/gif"); resp.StatusCode != 406 {
		t.Errorf("gif: %d", resp.StatusCode)
	}
}

func TestWADOFrames(t *testing.T) {
	srv, fs := loaded(t)
	ct := srv.URL + "/dicomweb/studies/" + ctStudy + "/series/" + ctSeries + "/instances/" + ctSOP
	resp, b := get(t, ct+"/frames/1", "")
	parts, types := readMultipart(t, resp, b)
	// pydicom: Pixel Data value at file offset 6300, 32768 bytes.
	raw := fs.files[ctSOP]
	if len(parts) != 1 || len(parts[0]) != 128*128*2 || !bytes.Equal(parts[0], raw[6300:6300+32768]) || types[0] != MediaOctet {
		t.Fatalf("CT frame: %d parts, %d bytes", len(parts), len(parts[0]))
	}
	// RLE RGB, two frames, requested in reverse order: decoded samples.
	row := fs.rows[rgbSOP]
	url := srv.URL + "/dicomweb/studies/" + row.Series.Study.StudyInstanceUID + "/series/" + row.Series.SeriesInstanceUID + "/instances/" + rgbSOP
	resp, b = get(t, url+"/frames/2,1", `multipart/related; type="application/octet-stream"`)
	parts, _ = readMultipart(t, resp, b)
	if len(parts) != 2 || len(parts[0]) != 100*100*3 {
		t.Fatalf("RGB frames: %d parts", len(parts))
	}
	sum := 0
	for _, v := range parts[0] {
		sum += int(v)
	}
	// pydicom: frame 2 sums to 3819000; pixel (50,50) = (127,127,0); frame 1 pixel 0 = (255,0,0).
	if sum != 3819000 || !bytes.Equal(parts[0][(50*100+50)*3:][:3], []byte{127, 127, 0}) || !bytes.Equal(parts[1][:3], []byte{255, 0, 0}) {
		t.Fatalf("frame 2 sum %d pixel %v; frame 1 pixel %v", sum, parts[0][(50*100+50)*3:][:3], parts[1][:3])
	}
	if resp, _ := get(t, url+"/frames/3", ""); resp.StatusCode != 404 {
		t.Errorf("frame 3: %d", resp.StatusCode)
	}
	if resp, _ := get(t, url+"/frames/0", ""); resp.StatusCode != 400 {
		t.Errorf("frame 0: %d", resp.StatusCode)
	}
}

// An instance accepted as sent whose pixel attributes do not match its
// pixel data (Rows 0, Bits Allocated 0 on a 16-bit CT) cannot be
// rendered or framed: 406 with the decoder's reason, not a 500.
func TestWADOUndecodableStoredPixelData(t *testing.T) {
	orig := readShared(t, "CT_small.dcm")
	patch := func(tag string, val []byte) []byte {
		b := bytes.Clone(orig)
		i := bytes.Index(b, []byte(tag))
		if i < 0 {
			t.Fatalf("tag %x not in CT_small.dcm", tag)
		}
		copy(b[i+len(tag):], val)
		return b
	}
	for name, f := range map[string][]byte{
		"rows 0":           patch("\x28\x00\x10\x00US\x02\x00", []byte{0, 0}),
		"bits allocated 0": patch("\x28\x00\x00\x01US\x02\x00", []byte{0, 0}),
	} {
		srv, fs := newTestServer(t, Config{})
		if _, err := fs.Ingest(context.Background(), bytes.NewReader(f), Source{}); err != nil {
			t.Fatalf("%s: ingest: %v", name, err)
		}
		ct := srv.URL + "/dicomweb/studies/" + ctStudy + "/series/" + ctSeries + "/instances/" + ctSOP
		for _, u := range []string{ct + "/rendered", ct + "/frames/1"} {
			resp, b := get(t, u, "")
			if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(string(b), "cannot be decoded: pixel: inconsistent pixel data") {
				t.Errorf("%s %s: %d %s, want 406 naming the inconsistency", name, u[len(ct):], resp.StatusCode, b)
			}
		}
		if resp, _ := get(t, ct+"/metadata", ""); resp.StatusCode != 200 {
			t.Errorf("%s: metadata %d, want 200", name, resp.StatusCode)
		}
	}
}
