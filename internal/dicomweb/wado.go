package dicomweb

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/pixel"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// instancesFor resolves the instances addressed by the request path
// (study, study/series or study/series/instance). errors: ErrNotFound.
func (s *Service) instancesFor(ctx context.Context, r *http.Request) ([]InstanceRow, error) {
	study, series, sop := r.PathValue("study"), r.PathValue("series"), r.PathValue("instance")
	if sop != "" {
		row, err := s.cfg.Catalog.Instance(ctx, sop)
		if err != nil {
			return nil, err
		}
		if row.Series.Study.StudyInstanceUID != study || row.Series.SeriesInstanceUID != series {
			return nil, fmt.Errorf("%w: instance is not in the addressed series", ErrNotFound)
		}
		return []InstanceRow{row}, nil
	}
	q := Query{StudyInstanceUIDs: []string{study}}
	if series != "" {
		q.SeriesInstanceUIDs = []string{series}
	}
	const page = 1000
	var out []InstanceRow
	for q.Limit = page; ; q.Offset += page {
		rows, err := s.cfg.Catalog.SearchInstances(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		if len(rows) < page {
			break
		}
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// acceptMultipart reports whether the Accept header allows
// multipart/related with parts of partType (stored transfer syntax).
func acceptMultipart(accept, partType string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, rng := range splitAccept(accept) {
		mt, params, err := parseMediaType(strings.TrimSpace(rng))
		if err != nil {
			continue
		}
		switch mt {
		case "*/*", "multipart/*":
			return true
		case MediaMultipart:
			t := params["type"]
			ts := params["transfer-syntax"]
			if (t == "" || strings.EqualFold(t, partType)) && (ts == "" || ts == "*" || partType != MediaDICOM) {
				return true
			}
		}
	}
	return false
}

func newBoundary() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "radflow-" + hex.EncodeToString(b[:])
}

// multipartOut frames a multipart/related response body.
type multipartOut struct {
	bw *bufio.Writer
	mw *multipart.Writer
}

func newMultipartOut(w io.Writer, boundary string) *multipartOut {
	bw := bufio.NewWriterSize(w, 64<<10)
	mw := multipart.NewWriter(bw)
	_ = mw.SetBoundary(boundary) // newBoundary's output is always valid
	return &multipartOut{bw: bw, mw: mw}
}

func (m *multipartOut) part(h textproto.MIMEHeader) (io.Writer, error) { return m.mw.CreatePart(h) }

func (m *multipartOut) close() error {
	if err := m.mw.Close(); err != nil {
		return err
	}
	return m.bw.Flush()
}

// retrieve handles WADO-RS study, series and instance retrieve
// (PS3.18 10.4): multipart/related; type="application/dicom", one part per
// instance, bytes exactly as stored.
func (s *Service) retrieve(w http.ResponseWriter, r *http.Request) {
	if !acceptMultipart(r.Header.Get("Accept"), MediaDICOM) {
		httpError(w, http.StatusNotAcceptable, `only multipart/related; type="application/dicom" in the stored transfer syntax is available (no transcoding)`)
		return
	}
	rows, err := s.instancesFor(r.Context(), r)
	if err != nil {
		s.catalogError(w, r, err)
		return
	}
	// Open the first instance before committing to a 200.
	first, err := s.cfg.Catalog.OpenInstance(r.Context(), rows[0].SOPInstanceUID)
	if err != nil {
		s.catalogError(w, r, err)
		return
	}
	boundary := newBoundary()
	w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, boundary))
	w.WriteHeader(http.StatusOK)
	pw := newMultipartOut(w, boundary)
	for i, row := range rows {
		rc := first
		if i > 0 {
			rc, err = s.cfg.Catalog.OpenInstance(r.Context(), row.SOPInstanceUID)
			if err != nil {
				s.abortStream(r, err)
			}
		}
		h := textproto.MIMEHeader{}
		ct := MediaDICOM
		if row.TransferSyntaxUID != "" {
			ct += "; transfer-syntax=" + row.TransferSyntaxUID
		}
		h.Set("Content-Type", ct)
		pwr, err := pw.part(h)
		if err == nil {
			_, err = io.Copy(pwr, rc)
		}
		rc.Close()
		if err != nil {
			s.abortStream(r, err)
		}
	}
	if err := pw.close(); err != nil {
		s.abortStream(r, err)
	}
}

// abortStream ends a response whose status was already sent, so that the
// client sees a broken body rather than a complete-looking one.
func (s *Service) abortStream(r *http.Request, err error) {
	if r.Context().Err() == nil {
		s.log.Error("dicomweb: retrieve aborted", "request_id", r.Header.Get("X-Request-ID"), "path_pattern", r.Pattern, "error", err.Error())
	}
	panic(http.ErrAbortHandler)
}

// addressedInstance resolves and parses the one instance an instance-level
// request addresses (.../instances/{instance}/frames or /rendered). On
// failure it has answered the request (catalogError or storedError) and
// ok is false.
func (s *Service) addressedInstance(w http.ResponseWriter, r *http.Request) (row InstanceRow, in *dicom.Instance, ok bool) {
	rows, err := s.instancesFor(r.Context(), r)
	if err != nil {
		s.catalogError(w, r, err)
		return InstanceRow{}, nil, false
	}
	in, err = s.loadInstance(r.Context(), rows[0])
	if err != nil {
		s.storedError(w, r, err)
		return InstanceRow{}, nil, false
	}
	return rows[0], in, true
}

// loadInstance reads and parses one stored instance.
func (s *Service) loadInstance(ctx context.Context, row InstanceRow) (*dicom.Instance, error) {
	rc, err := s.cfg.Catalog.OpenInstance(ctx, row.SOPInstanceUID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, s.cfg.MaxInstanceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("dicomweb: reading stored instance: %w", err)
	}
	if int64(len(b)) > s.cfg.MaxInstanceBytes {
		return nil, fmt.Errorf("%w: stored instance over %d bytes", ErrOutOfResources, s.cfg.MaxInstanceBytes)
	}
	return dicom.ParseBytes(b)
}

// metadata handles WADO-RS /metadata at study, series and instance level:
// a JSON array of DICOM JSON data sets, Pixel Data as a BulkDataURI to the
// instance's frames resource, other bulk values over MaxInlineBinary bytes
// without value.
func (s *Service) metadata(w http.ResponseWriter, r *http.Request) {
	if !acceptJSON(r.Header.Get("Accept")) {
		httpError(w, http.StatusNotAcceptable, "metadata is available as application/dicom+json only")
		return
	}
	rows, err := s.instancesFor(r.Context(), r)
	if err != nil {
		s.catalogError(w, r, err)
		return
	}
	base := s.baseURL(r)
	started := false
	var enc *json.Encoder
	for _, row := range rows {
		in, err := s.loadInstance(r.Context(), row)
		if err != nil {
			if !started {
				s.storedError(w, r, err)
				return
			}
			s.abortStream(r, err)
		}
		url := s.instanceURL(base, row.Series.Study.StudyInstanceUID, row.Series.SeriesInstanceUID, row.SOPInstanceUID)
		pixelURI := ""
		if in.PixelData() != nil {
			n := max(in.Int(tag.NumberOfFrames, 1), 1)
			list := make([]string, n)
			for i := range list {
				list[i] = strconv.Itoa(i + 1)
			}
			pixelURI = url + "/frames/" + strings.Join(list, ",")
		}
		d := MetadataOf(in, pixelURI)
		if !started {
			w.Header().Set("Content-Type", MediaDICOMJSON)
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "[")
			enc = json.NewEncoder(w)
			started = true
		} else {
			io.WriteString(w, ",")
		}
		if err := enc.Encode(d); err != nil {
			s.abortStream(r, err)
		}
	}
	io.WriteString(w, "]\n")
}

func acceptJSON(accept string) bool {
	if strings.TrimSpace(accept) == "" {
		return true
	}
	for _, rng := range splitAccept(accept) {
		mt, _, err := parseMediaType(strings.TrimSpace(rng))
		if err != nil {
			continue
		}
		switch mt {
		case "*/*", "application/*", MediaDICOMJSON, "application/json":
			return true
		}
	}
	return false
}

// storedError answers an error from reading, parsing or decoding a stored
// instance (before any byte of the body was written).
func (s *Service) storedError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		httpError(w, http.StatusNotFound, "not found")
	case errors.Is(err, pixel.ErrNoPixelData):
		httpError(w, http.StatusNotFound, "the instance has no pixel data")
	case errors.Is(err, pixel.ErrUnsupportedTransferSyntax), errors.Is(err, pixel.ErrUnsupportedPhotometric),
		errors.Is(err, pixel.ErrInconsistent), errors.Is(err, pixel.ErrTruncated), errors.Is(err, pixel.ErrCodec):
		// What the sender stored cannot be decoded (attributes that do not
		// match the pixel data, a truncated or corrupt codestream): a
		// property of the instance, kept as received, not a server fault.
		httpError(w, http.StatusNotAcceptable, "the stored pixel data cannot be decoded: "+err.Error())
	case r.Context().Err() != nil:
	default:
		s.log.Error("dicomweb: stored instance unreadable", "request_id", r.Header.Get("X-Request-ID"), "path_pattern", r.Pattern, "error", err.Error())
		httpError(w, http.StatusInternalServerError, "stored instance could not be read or decoded")
	}
}

// parseFrameList parses "1,3,5" (1-based frame numbers, PS3.18 8.3.3).
func parseFrameList(s string, nframes int) ([]int, int, string) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, http.StatusBadRequest, "frame list must be comma-separated frame numbers starting at 1"
		}
		if n > nframes {
			return nil, http.StatusNotFound, fmt.Sprintf("frame %d does not exist; the instance has %d frames", n, nframes)
		}
		out = append(out, n)
	}
	if len(out) == 0 || len(out) > 10000 {
		return nil, http.StatusBadRequest, "frame list must have 1 to 10000 frames"
	}
	return out, 0, ""
}

// frames handles WADO-RS /frames/{frames}: multipart/related;
// type="application/octet-stream", one part per requested frame, in request
// order. Native (uncompressed little endian, Bits Allocated >= 8) frames are
// the stored bytes; other frames are decoded by package pixel and written
// as little-endian samples of the decoded type (pixel-interleaved, colour
// converted to RGB, 1-bit data as one byte per pixel).
func (s *Service) frames(w http.ResponseWriter, r *http.Request) {
	if !acceptMultipart(r.Header.Get("Accept"), MediaOctet) {
		httpError(w, http.StatusNotAcceptable, `frames are available as multipart/related; type="application/octet-stream" only`)
		return
	}
	row, in, ok := s.addressedInstance(w, r)
	if !ok {
		return
	}
	pd := in.PixelData()
	if pd == nil {
		httpError(w, http.StatusNotFound, "the instance has no pixel data")
		return
	}
	info, err := pixel.InfoOf(in.Root())
	if err != nil {
		s.storedError(w, r, err)
		return
	}
	list, status, msg := parseFrameList(r.PathValue("frames"), info.Frames)
	if status != 0 {
		httpError(w, status, msg)
		return
	}
	bodies := make([][]byte, len(list))
	frameBytes := info.Rows * info.Columns * info.SamplesPerPixel * info.BitsAllocated / 8
	raw := !pd.Encapsulated && !pd.BigEndian && info.BitsAllocated >= 8 && info.Photometric != "YBR_FULL_422"
	if raw && len(pd.Native) < frameBytes*info.Frames {
		s.storedError(w, r, fmt.Errorf("%w: %d bytes for %d frames of %d", pixel.ErrTruncated, len(pd.Native), info.Frames, frameBytes))
		return
	}
	var img *pixel.Image
	for i, n := range list {
		if raw {
			bodies[i] = pd.Native[(n-1)*frameBytes : n*frameBytes]
			continue
		}
		if img == nil {
			if img, err = pixel.Decode(in); err != nil {
				s.storedError(w, r, err)
				return
			}
		}
		if n > len(img.Frames) {
			httpError(w, http.StatusNotFound, fmt.Sprintf("frame %d does not exist", n))
			return
		}
		bodies[i] = frameLE(&img.Frames[n-1])
	}
	boundary := newBoundary()
	w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/octet-stream"; boundary=%s`, boundary))
	w.WriteHeader(http.StatusOK)
	pw := newMultipartOut(w, boundary)
	base := s.baseURL(r)
	for i, b := range bodies {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", MediaOctet)
		h.Set("Content-Location", s.instanceURL(base, row.Series.Study.StudyInstanceUID, row.Series.SeriesInstanceUID, row.SOPInstanceUID)+"/frames/"+strconv.Itoa(list[i]))
		pwr, err := pw.part(h)
		if err == nil {
			_, err = pwr.Write(b)
		}
		if err != nil {
			s.abortStream(r, err)
		}
	}
	if err := pw.close(); err != nil {
		s.abortStream(r, err)
	}
}

// frameLE serialises a decoded frame as little-endian samples.
func frameLE(f *pixel.Frame) []byte {
	switch {
	case f.U8 != nil:
		return f.U8
	case f.I8 != nil:
		out := make([]byte, len(f.I8))
		for i, v := range f.I8 {
			out[i] = byte(v)
		}
		return out
	case f.U16 != nil:
		out := make([]byte, 2*len(f.U16))
		for i, v := range f.U16 {
			binary.LittleEndian.PutUint16(out[2*i:], v)
		}
		return out
	case f.I16 != nil:
		out := make([]byte, 2*len(f.I16))
		for i, v := range f.I16 {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
		}
		return out
	case f.U32 != nil:
		out := make([]byte, 4*len(f.U32))
		for i, v := range f.U32 {
			binary.LittleEndian.PutUint32(out[4*i:], v)
		}
		return out
	case f.I32 != nil:
		out := make([]byte, 4*len(f.I32))
		for i, v := range f.I32 {
			binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
		}
		return out
	case f.F32 != nil:
		out := make([]byte, 4*len(f.F32))
		for i, v := range f.F32 {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
		return out
	case f.F64 != nil:
		out := make([]byte, 8*len(f.F64))
		for i, v := range f.F64 {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(v))
		}
		return out
	}
	return nil
}
