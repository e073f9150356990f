package dicomweb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom/pkg/tag"
)

func newTestServer(t *testing.T, cfg Config) (*httptest.Server, *fakeStore) {
	t.Helper()
	fs := newFakeStore()
	if cfg.Ingester == nil {
		cfg.Ingester = fs
	}
	if cfg.Catalog == nil {
		cfg.Catalog = fs
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return srv, fs
}

func multipartBody(boundary string, parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n")
		b.Write(p)
		b.WriteString("\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

func post(t *testing.T, url, ct string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, body)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func decodeStore(t *testing.T, b []byte) StoreResponse {
	t.Helper()
	var d Dataset
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("response is not DICOM JSON: %v: %s", err, b)
	}
	return ParseStoreResponse(d)
}

func TestStowContentTypeParameterForms(t *testing.T) {
	ct := readShared(t, "CT_small.dcm")
	srv, fs := newTestServer(t, Config{})
	forms := []string{
		`multipart/related; type="application/dicom"; boundary="XyZ-1"`,
		`multipart/related; type=application/dicom; boundary=XyZ-1`,
		`multipart/related; boundary=XyZ-1; type="application/dicom"`,
		`Multipart/Related;boundary="XyZ-1";type=application/dicom`,
		`multipart/related; boundary=XyZ-1`, // type omitted: application/dicom assumed
	}
	for _, f := range forms {
		resp, b := post(t, srv.URL+"/dicomweb/studies", f, bytes.NewReader(multipartBody("XyZ-1", ct)))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", f, resp.StatusCode, b)
		}
		r := decodeStore(t, b)
		if len(r.Referenced) != 1 || r.Referenced[0].SOPInstanceUID != ctSOP || r.Referenced[0].SOPClassUID != "1.2.840.10008.5.1.4.1.1.2" {
			t.Fatalf("%s: referenced %+v", f, r.Referenced)
		}
		want := srv.URL + "/dicomweb/studies/" + ctStudy + "/series/" + ctSeries + "/instances/" + ctSOP
		if r.Referenced[0].RetrieveURL != want || r.RetrieveURL != srv.URL+"/dicomweb/studies/"+ctStudy {
			t.Fatalf("%s: retrieve URLs %q %q", f, r.Referenced[0].RetrieveURL, r.RetrieveURL)
		}
	}
	if fs.calls != len(forms) {
		t.Fatalf("ingest calls %d, want %d", fs.calls, len(forms))
	}
}

func TestStowChunkedMultiplePartsViaClient(t *testing.T) {
	ct, mr, rgb := readShared(t, "CT_small.dcm"), readShared(t, "MR_small.dcm"), readShared(t, "SC_rgb_rle_2frame.dcm")
	srv, fs := newTestServer(t, Config{})
	c := &Client{BaseURL: srv.URL + "/dicomweb"}
	// Client streams through a pipe: no Content-Length, chunked encoding.
	r, err := c.Store(context.Background(), "", bytes.NewReader(ct), bytes.NewReader(mr), bytes.NewReader(rgb))
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != 200 || len(r.Referenced) != 3 || len(r.Failed) != 0 {
		t.Fatalf("got %+v", r)
	}
	got := []string{r.Referenced[0].SOPInstanceUID, r.Referenced[1].SOPInstanceUID, r.Referenced[2].SOPInstanceUID}
	if got[0] != ctSOP || got[1] != mrSOP || got[2] != rgbSOP {
		t.Fatalf("order/UIDs %v", got)
	}
	if r.RetrieveURL != "" {
		t.Fatalf("three studies must not give a study RetrieveURL, got %q", r.RetrieveURL)
	}
	if !bytes.Equal(fs.files[mrSOP], mr) {
		t.Fatal("stored MR bytes differ from the posted ones")
	}
}

func TestStowPartFailures(t *testing.T) {
	ct, mr := readShared(t, "CT_small.dcm"), readShared(t, "MR_small.dcm")
	// Parses as DICOM but has no SOP Instance UID (0008,0018).
	noSOP := part10(tag.SOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7", tag.PatientName, "PN", "Doe^John", tag.StudyInstanceUID, "UI", "1.2.3")
	srv, fs := newTestServer(t, Config{})
	c := &Client{BaseURL: srv.URL + "/dicomweb"}
	cases := []struct {
		name   string
		parts  [][]byte
		status int
		failed int
		reason uint16
	}{
		{"pixel data truncated + good", [][]byte{ct[:len(ct)/3], mr}, 202, 1, FailureCannotUnderstand},
		{"header truncated mid-element", [][]byte{ct[:1000]}, 409, 1, FailureCannotUnderstand},
		{"non-DICOM bytes", [][]byte{[]byte("this is not a DICOM file at all, just text.")}, 409, 1, FailureCannotUnderstand},
		{"no SOP Instance UID", [][]byte{noSOP}, 409, 1, FailureCannotUnderstand},
		{"empty part", [][]byte{{}}, 409, 1, FailureCannotUnderstand},
	}
	for _, tc := range cases {
		readers := make([]io.Reader, len(tc.parts))
		for i, p := range tc.parts {
			readers[i] = bytes.NewReader(p)
		}
		r, err := c.Store(context.Background(), "", readers...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.HTTPStatus != tc.status || len(r.Failed) != tc.failed || r.Failed[0].FailureReason != tc.reason {
			t.Fatalf("%s: got status %d failed %+v", tc.name, r.HTTPStatus, r.Failed)
		}
	}
	if _, ok := fs.files[ctSOP]; ok {
		t.Fatal("truncated CT was stored")
	}
	if _, ok := fs.files[mrSOP]; !ok {
		t.Fatal("MR after a bad part was not stored")
	}
}

func TestStowStudyMismatch(t *testing.T) {
	ct, mr := readShared(t, "CT_small.dcm"), readShared(t, "MR_small.dcm")
	srv, fs := newTestServer(t, Config{})
	c := &Client{BaseURL: srv.URL + "/dicomweb"}
	r, err := c.Store(context.Background(), ctStudy, bytes.NewReader(ct), bytes.NewReader(mr))
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != 202 || len(r.Referenced) != 1 || len(r.Failed) != 1 {
		t.Fatalf("got %+v", r)
	}
	if f := r.Failed[0]; f.FailureReason != FailureStudyMismatch || f.SOPInstanceUID != mrSOP {
		t.Fatalf("failed item %+v, want 0xC122 for the MR", f)
	}
	if _, ok := fs.files[mrSOP]; ok {
		t.Fatal("mismatching instance stored")
	}
	r, err = c.Store(context.Background(), ctStudy, bytes.NewReader(mr))
	if err != nil || r.HTTPStatus != 409 {
		t.Fatalf("all mismatching: %v %+v", err, r)
	}
}

func TestStowRequestErrors(t *testing.T) {
	ct := readShared(t, "CT_small.dcm")
	srv, fs := newTestServer(t, Config{})
	url := srv.URL + "/dicomweb/studies"
	good := multipartBody("b1", ct)
	cases := []struct {
		name, ct string
		body     []byte
		status   int
		errHas   string
	}{
		{"no content type", "", good, 415, "Content-Type"},
		{"wrong media type", "application/dicom", ct, 415, "unsupported media type"},
		{"json parts", `multipart/related; type="application/dicom+json"; boundary=b1`, good, 415, "application/dicom+json"},
		{"missing boundary", `multipart/related; type="application/dicom"`, good, 400, "boundary"},
		{"empty body", `multipart/related; type="application/dicom"; boundary=b1`, nil, 400, "no part"},
		{"only close delimiter", `multipart/related; type="application/dicom"; boundary=b1`, []byte("--b1--\r\n"), 400, "no parts"},
		{"wrong boundary", `multipart/related; type="application/dicom"; boundary=other`, good, 400, "multipart"},
		{"cut mid-part", `multipart/related; type="application/dicom"; boundary=b1`, good[:len(good)/2], 400, "malformed multipart"},
		// A large body under another boundary: mime/multipart gives up
		// with bufio.ErrBufferFull; the client gets a sentence instead.
		{"wrong boundary, large body", `multipart/related; type="application/dicom"; boundary=other`,
			multipartBody("b1", bytes.Repeat(ct, 30)), 400, "the boundary given in Content-Type does not open the body"},
	}
	for _, tc := range cases {
		resp, b := post(t, url, tc.ct, bytes.NewReader(tc.body))
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d want %d: %s", tc.name, resp.StatusCode, tc.status, b)
		}
		var e struct{ Error string }
		if err := json.Unmarshal(b, &e); err != nil || !strings.Contains(e.Error, tc.errHas) {
			t.Fatalf("%s: body %s lacks %q", tc.name, b, tc.errHas)
		}
	}
	if len(fs.files) != 0 {
		t.Fatalf("stored %d instances from bad requests", len(fs.files))
	}
}

func TestStowCutAfterGoodPartReportsIt(t *testing.T) {
	ct, mr := readShared(t, "CT_small.dcm"), readShared(t, "MR_small.dcm")
	srv, _ := newTestServer(t, Config{})
	body := multipartBody("b1", ct, mr)
	cut := body[:len(body)-len(mr)/2]
	resp, b := post(t, srv.URL+"/dicomweb/studies", `multipart/related; type="application/dicom"; boundary=b1`, bytes.NewReader(cut))
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != MediaDICOMJSON || !strings.Contains(resp.Header.Get("Warning"), "malformed multipart") {
		t.Fatalf("status %d ct %q warning %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Warning"))
	}
	r := decodeStore(t, b)
	if len(r.Referenced) != 1 || r.Referenced[0].SOPInstanceUID != ctSOP {
		t.Fatalf("partial outcome %+v", r)
	}
}

func TestStowBusy(t *testing.T) {
	ct := readShared(t, "CT_small.dcm")
	srv, fs := newTestServer(t, Config{})
	fs.busy = true
	c := &Client{BaseURL: srv.URL + "/dicomweb"}
	_, err := c.Store(context.Background(), "", bytes.NewReader(ct), bytes.NewReader(ct))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || se.RetryAfter.Seconds() != 30 {
		t.Fatalf("got %v", err)
	}
	if fs.calls != 1 {
		t.Fatalf("ingest called %d times after busy, want 1", fs.calls)
	}
}

func TestStowLimits(t *testing.T) {
	ct, mr := readShared(t, "CT_small.dcm"), readShared(t, "MR_small.dcm")
	// Per-instance limit between the MR (~10 KB) and the CT (~39 KB).
	srv, fs := newTestServer(t, Config{MaxInstanceBytes: int64(len(mr)) + 10})
	c := &Client{BaseURL: srv.URL + "/dicomweb"}
	r, err := c.Store(context.Background(), "", bytes.NewReader(ct), bytes.NewReader(mr))
	if err != nil || r.HTTPStatus != 202 || len(r.Failed) != 1 || r.Failed[0].FailureReason != FailureOutOfResources {
		t.Fatalf("instance limit: %v %+v", err, r)
	}
	if _, ok := fs.files[ctSOP]; ok {
		t.Fatal("oversized instance stored")
	}
	// Request limit below the body: 413, with and without Content-Length.
	srv2, _ := newTestServer(t, Config{MaxRequestBytes: int64(len(ct)) / 2})
	resp, b := post(t, srv2.URL+"/dicomweb/studies", `multipart/related; type="application/dicom"; boundary=b1`, bytes.NewReader(multipartBody("b1", ct)))
	if resp.StatusCode != 413 {
		t.Fatalf("Content-Length over limit: %d %s", resp.StatusCode, b)
	}
	c2 := &Client{BaseURL: srv2.URL + "/dicomweb"}
	_, err = c2.Store(context.Background(), "", bytes.NewReader(ct))
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 413 {
		t.Fatalf("chunked over limit: %v", err)
	}
}

// slowIngester stores nothing: it waits for the request's context to end,
// like an ingest stuck behind a slow disk past the route's deadline.
type slowIngester struct{}

func (slowIngester) Ingest(ctx context.Context, r io.Reader, _ Source) (Stored, error) {
	<-ctx.Done()
	return Stored{}, ctx.Err()
}

func TestStowDeadlineWhileStoringIs503(t *testing.T) {
	ct := readShared(t, "CT_small.dcm")
	fs := newFakeStore()
	svc, err := New(Config{Ingester: slowIngester{}, Catalog: fs})
	if err != nil {
		t.Fatal(err)
	}
	h := svc.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond) // the route deadline
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	resp, b := post(t, srv.URL+"/dicomweb/studies", `multipart/related; type="application/dicom"; boundary=b1`, bytes.NewReader(multipartBody("b1", ct)))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !bytes.Contains(b, []byte("retry")) {
		t.Fatalf("status %d, Retry-After %q, body %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}
