package dicomweb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// errPartTooLarge is returned by partReader past MaxInstanceBytes.
var errPartTooLarge = errors.New("dicomweb: part exceeds the instance size limit")

// SOPRef is one item of a STOW-RS response sequence.
type SOPRef struct {
	SOPClassUID    string
	SOPInstanceUID string
	RetrieveURL    string // Referenced only
	FailureReason  uint16 // Failed only
}

// StoreResponse is a STOW-RS Store Instances Response (PS3.18 10.5.3).
type StoreResponse struct {
	// HTTPStatus is the response status (set by Client; ignored by Dataset).
	HTTPStatus int
	// Warning is the Warning header, if any (set by Client).
	Warning string
	// RetrieveURL (0008,1190): the study's URL when every stored instance
	// belongs to one study.
	RetrieveURL string
	Referenced  []SOPRef // (0008,1199) ReferencedSOPSequence
	Failed      []SOPRef // (0008,1198) FailedSOPSequence
}

// Dataset encodes r as DICOM JSON.
func (r *StoreResponse) Dataset() Dataset {
	d := Dataset{}
	if r.RetrieveURL != "" {
		d.Set(tag.RetrieveURL, "UR", r.RetrieveURL)
	}
	if len(r.Referenced) > 0 {
		items := make([]any, len(r.Referenced))
		for i, ref := range r.Referenced {
			it := Dataset{}
			it.SetString(tag.ReferencedSOPClassUID, "UI", ref.SOPClassUID)
			it.SetString(tag.ReferencedSOPInstanceUID, "UI", ref.SOPInstanceUID)
			it.SetString(tag.RetrieveURL, "UR", ref.RetrieveURL)
			items[i] = it
		}
		d.Set(tag.ReferencedSOPSequence, "SQ", items...)
	}
	if len(r.Failed) > 0 {
		items := make([]any, len(r.Failed))
		for i, ref := range r.Failed {
			it := Dataset{}
			it.SetString(tag.ReferencedSOPClassUID, "UI", ref.SOPClassUID)
			it.SetString(tag.ReferencedSOPInstanceUID, "UI", ref.SOPInstanceUID)
			it.Set(tag.FailureReason, "US", int(ref.FailureReason))
			items[i] = it
		}
		d.Set(tag.FailedSOPSequence, "SQ", items...)
	}
	return d
}

// ParseStoreResponse decodes a Store Instances Response data set.
func ParseStoreResponse(d Dataset) StoreResponse {
	r := StoreResponse{RetrieveURL: d.String(tag.RetrieveURL)}
	for _, it := range d.Items(tag.ReferencedSOPSequence) {
		r.Referenced = append(r.Referenced, SOPRef{
			SOPClassUID:    it.String(tag.ReferencedSOPClassUID),
			SOPInstanceUID: it.String(tag.ReferencedSOPInstanceUID),
			RetrieveURL:    it.String(tag.RetrieveURL),
		})
	}
	for _, it := range d.Items(tag.FailedSOPSequence) {
		r.Failed = append(r.Failed, SOPRef{
			SOPClassUID:    it.String(tag.ReferencedSOPClassUID),
			SOPInstanceUID: it.String(tag.ReferencedSOPInstanceUID),
			FailureReason:  uint16(it.Int(tag.FailureReason, 0)),
		})
	}
	return r
}

// partReader limits one part and remembers transport errors (a broken
// multipart body, a request over the body limit), which are not the
// instance's fault.
type partReader struct {
	r         io.Reader
	left      int64
	transport error
	tooLarge  bool
}

func (p *partReader) Read(b []byte) (int, error) {
	if p.tooLarge {
		return 0, errPartTooLarge
	}
	if int64(len(b)) > p.left+1 {
		b = b[:p.left+1]
	}
	n, err := p.r.Read(b)
	if int64(n) > p.left {
		p.tooLarge = true
		return int(p.left), errPartTooLarge
	}
	p.left -= int64(n)
	if err != nil && err != io.EOF {
		p.transport = err
	}
	return n, err
}

// stow handles POST /studies and /studies/{study} (PS3.18 10.5).
func (s *Service) stow(w http.ResponseWriter, r *http.Request) {
	study := r.PathValue("study")
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		httpError(w, http.StatusUnsupportedMediaType, `Content-Type is required: multipart/related; type="application/dicom"; boundary=...`)
		return
	}
	mt, params, err := parseMediaType(ct)
	if err != nil {
		if mt != "" && mt != MediaMultipart {
			httpError(w, http.StatusUnsupportedMediaType, "unsupported media type "+mt)
			return
		}
		httpError(w, http.StatusBadRequest, "malformed Content-Type: "+err.Error())
		return
	}
	if mt != MediaMultipart {
		httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported media type %s; use multipart/related; type=\"application/dicom\"", mt))
		return
	}
	if t := params["type"]; t != "" && !strings.EqualFold(t, MediaDICOM) {
		httpError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported multipart type %q; only application/dicom parts are accepted", t))
		return
	}
	boundary := params["boundary"]
	if boundary == "" {
		httpError(w, http.StatusBadRequest, "multipart/related Content-Type has no boundary parameter")
		return
	}
	if r.ContentLength > s.cfg.MaxRequestBytes {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.cfg.MaxRequestBytes))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	// mime/multipart reads through its own 4 KiB buffer: straight from the
	// connection that was one read syscall per 4 KiB (about 0.5 ms of
	// CPU per 0.5 MB part); a large buffer under it makes that a copy.
	closing := &closeWatch{r: body, delim: []byte("\r\n--" + boundary + "--")}
	br := getBodyReader(closing)
	defer putBodyReader(br)
	mr := multipart.NewReader(br, boundary)
	base := s.baseURL(r)
	reqID := r.Header.Get("X-Request-ID")
	var resp StoreResponse
	studies := map[string]bool{}
	parts := 0

	// abort answers a request-level failure after some parts may have been
	// processed: the partial outcome goes in a DICOM JSON body.
	abort := func(status int, msg string) {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds()+0.5)))
		}
		if parts == 0 || (len(resp.Referenced) == 0 && len(resp.Failed) == 0) {
			httpError(w, status, msg)
			return
		}
		w.Header().Set("Warning", warning(msg))
		writeDICOMJSON(w, status, resp.Dataset())
	}
	transportStatus := func(err error) (int, string) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			// mime/multipart looks for the first boundary line within its
			// read buffer: a body that does not start with the boundary
			// named in Content-Type ends up here.
			return http.StatusBadRequest, "malformed multipart body: the boundary given in Content-Type does not open the body"
		}
		return http.StatusBadRequest, "malformed multipart body: " + err.Error()
	}

	for {
		part, err := mr.NextPart()
		if err == io.EOF && parts > 0 && !closing.seen {
			// mime/multipart reports a body cut inside a part's headers as
			// the end of the parts (textproto's io.EOF): without its close
			// delimiter the body was truncated, and that part is lost.
			abort(http.StatusBadRequest, "malformed multipart body: it ends before its close delimiter (truncated upload)")
			return
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if parts == 0 && errors.Is(err, io.EOF) {
				abort(http.StatusBadRequest, "empty or malformed multipart body: no part found")
				return
			}
			abort(transportStatus(err))
			return
		}
		parts++
		pct := part.Header.Get("Content-Type")
		if pct != "" {
			if pmt, _, perr := parseMediaType(pct); perr != nil || !strings.EqualFold(pmt, MediaDICOM) {
				s.log.Warn("stow: part rejected", "request_id", reqID, "part", parts, "reason", "unsupported part media type")
				resp.Failed = append(resp.Failed, SOPRef{FailureReason: FailureCannotUnderstand})
				continue
			}
		}
		pr := &partReader{r: part, left: s.cfg.MaxInstanceBytes}
		src := Source{Protocol: "dicomweb", RemoteAddr: r.RemoteAddr, StudyInstanceUID: study, ContentType: pct, RequestID: reqID}
		st, ierr := s.cfg.Ingester.Ingest(r.Context(), pr, src)
		if pr.transport != nil {
			// The body broke while this part was read: whatever the
			// Ingester said, the part is incomplete.
			abort(transportStatus(pr.transport))
			return
		}
		if ierr == nil && pr.tooLarge {
			ierr = errPartTooLarge
		}
		if ierr == nil && study != "" && st.StudyInstanceUID != "" && st.StudyInstanceUID != study {
			// Contract violation by the Ingester; still report the mismatch.
			s.log.Error("stow: ingester stored an instance of another study", "request_id", reqID, "part", parts)
			ierr = ErrStudyMismatch
		}
		if ierr != nil {
			if errors.Is(ierr, ErrBusy) {
				abort(http.StatusServiceUnavailable, "ingest is busy; retry later")
				return
			}
			if r.Context().Err() != nil {
				// Deadline or client gone: answer with what was stored so
				// far (a client that left never reads it), never a bare 200.
				abort(http.StatusServiceUnavailable, "the request ended (deadline or client gone) while a part was being stored; retry")
				return
			}
			reason := FailureReasonOf(ierr)
			if pr.tooLarge {
				reason = FailureOutOfResources
			}
			s.log.Warn("stow: part failed", "request_id", reqID, "part", parts, "failure_reason", fmt.Sprintf("0x%04X", reason), "error", ierr.Error())
			resp.Failed = append(resp.Failed, SOPRef{SOPClassUID: st.SOPClassUID, SOPInstanceUID: st.SOPInstanceUID, FailureReason: reason})
			continue
		}
		url := st.RetrieveURL
		if url == "" && st.StudyInstanceUID != "" && st.SeriesInstanceUID != "" {
			url = s.instanceURL(base, st.StudyInstanceUID, st.SeriesInstanceUID, st.SOPInstanceUID)
		}
		studies[st.StudyInstanceUID] = true
		resp.Referenced = append(resp.Referenced, SOPRef{SOPClassUID: st.SOPClassUID, SOPInstanceUID: st.SOPInstanceUID, RetrieveURL: url})
	}
	if parts == 0 {
		httpError(w, http.StatusBadRequest, "multipart body has no parts")
		return
	}
	if len(studies) == 1 {
		for uid := range studies {
			if uid != "" {
				resp.RetrieveURL = base + "/studies/" + uid
			}
		}
	}
	status := http.StatusOK
	switch {
	case len(resp.Referenced) == 0:
		status = http.StatusConflict
	case len(resp.Failed) > 0:
		status = http.StatusAccepted
	}
	writeDICOMJSON(w, status, resp.Dataset())
}

// bodyReaderSize is the read-ahead under STOW-RS's multipart reader.
const bodyReaderSize = 256 << 10

// bodyReaders recycles the STOW-RS read-ahead buffers.
var bodyReaders sync.Pool

func getBodyReader(r io.Reader) *bufio.Reader {
	if br, ok := bodyReaders.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bodyReaderSize)
}

func putBodyReader(br *bufio.Reader) {
	br.Reset(nil)
	bodyReaders.Put(br)
}

// closeWatch passes a multipart body through and notes whether its close
// delimiter (CRLF "--" boundary "--", RFC 2046 5.1.1) went by. A part's
// content cannot contain it, so seeing it means the body was not cut
// short.
type closeWatch struct {
	r     io.Reader
	delim []byte
	tail  []byte // the last len(delim)-1 bytes read, for a delimiter split across reads
	join  []byte // tail + the start of the next read
	seen  bool
}

func (c *closeWatch) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && !c.seen {
		b := p[:n]
		if len(c.tail) > 0 {
			// Only the join of the tail and the start of b is new here.
			c.join = append(append(c.join[:0], c.tail...), b[:min(len(b), len(c.delim)-1)]...)
			c.seen = bytes.Contains(c.join, c.delim)
		}
		c.seen = c.seen || bytes.Contains(b, c.delim)
		keep := len(c.delim) - 1
		if len(b) >= keep {
			c.tail = append(c.tail[:0], b[len(b)-keep:]...)
		} else {
			c.tail = append(c.tail, b...)
			if len(c.tail) > keep {
				c.tail = c.tail[len(c.tail)-keep:]
			}
		}
	}
	return n, err
}
