package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/radflow/radflow/internal/deid"
	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/dimse"
)

// errSize: the stored file is shorter than its recorded size.
var errSize = errors.New("stored instance shorter than its recorded size")

// headLen is how much of a Part 10 file is read to find its file meta:
// preamble, DICM and dimse's 64 KiB file meta cap, plus one element header.
const headLen = 128 + 4 + 64<<10 + 12

// sendResult is what happened to one instance on an association.
type sendResult struct {
	status, reason, msg string
	// broken: the association cannot carry more messages (a data set was
	// cut short) though this instance has its final outcome.
	broken bool
	// transportErr: the association failed before a status arrived; the
	// instance stays pending for the next association.
	transportErr error
}

// srcReader reads the data set to send and remembers source errors, so a
// failed Store can be told apart from a failed network.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	if err == io.EOF && n == 0 {
		// Store asks for exactly the size; EOF before it is a short file.
		s.err = errSize
	}
	return n, err
}

// part10 is an opened instance: file meta, and the data set as a stream.
type part10 struct {
	meta   dimse.FileMeta
	ds     io.Reader
	dsSize int64
	closer io.Closer
}

// openStream opens ref and locates its data set without reading it whole
// when ref.Size is known; otherwise the file is read into memory (at most
// max bytes).
func openStream(ctx context.Context, src Source, ref Ref, max int64) (*part10, error) {
	rc, err := src.Open(ctx, ref.SOPInstanceUID)
	if err != nil {
		return nil, err
	}
	if ref.Size <= 0 || ref.Size > 1<<32+headLen {
		b, err := readAll(rc, max)
		rc.Close()
		if err != nil {
			return nil, err
		}
		meta, off, err := dimse.ReadFileMeta(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return &part10{meta: meta, ds: bytes.NewReader(b[off:]), dsSize: int64(len(b)) - off, closer: io.NopCloser(nil)}, nil
	}
	n := int64(headLen)
	if ref.Size < n {
		n = ref.Size
	}
	head := make([]byte, n)
	if _, err := io.ReadFull(rc, head); err != nil {
		rc.Close()
		return nil, fmt.Errorf("reading the stored instance: %w", err)
	}
	meta, off, err := dimse.ReadFileMeta(bytes.NewReader(head))
	if err != nil {
		rc.Close()
		return nil, err
	}
	ds := io.MultiReader(bytes.NewReader(head[off:]), rc)
	return &part10{meta: meta, ds: io.LimitReader(ds, ref.Size-off), dsSize: ref.Size - off, closer: rc}, nil
}

// readAll reads r into memory, refusing more than max bytes.
func readAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading the stored instance: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("stored instance larger than the %d-byte limit for in-memory export", max)
	}
	return b, nil
}

// probe fills p.ref's SOP class and transfer syntax from the file meta.
func (e *Exporter) probe(ctx context.Context, p *plan) error {
	rc, err := e.opts.Source.Open(ctx, p.ref.SOPInstanceUID)
	if err != nil {
		return err
	}
	defer rc.Close()
	head, err := io.ReadAll(io.LimitReader(rc, headLen))
	if err != nil {
		return fmt.Errorf("reading the stored instance: %w", err)
	}
	meta, _, err := dimse.ReadFileMeta(bytes.NewReader(head))
	if err != nil {
		return err
	}
	if p.ref.SOPClassUID == "" {
		p.ref.SOPClassUID = meta.MediaStorageSOPClassUID
		p.out.SOPClassUID = meta.MediaStorageSOPClassUID
	}
	if p.ref.TransferSyntaxUID == "" {
		p.ref.TransferSyntaxUID = meta.TransferSyntaxUID
	}
	if p.ref.SOPClassUID == "" {
		return fmt.Errorf("%w: file meta without a Media Storage SOP Class UID", dimse.ErrNotPart10)
	}
	return nil
}

// sendOne prepares p (stored bytes, or de-identified ones for an external
// destination) and C-STOREs it on cl.
func (e *Exporter) sendOne(ctx context.Context, cl *dimse.Client, d *Destination, keys *deid.Keys, p *plan) sendResult {
	var (
		sop, class, ts string
		ds             io.Reader
		size           int64
	)
	if d.External {
		b, err := e.openAll(ctx, p.ref)
		if err != nil {
			return sendResult{status: StatusNotSent, reason: ReasonRead, msg: err.Error()}
		}
		in, err := dicom.ParseBytes(b)
		if err != nil {
			return sendResult{status: StatusNotSent, reason: ReasonDeid, msg: "not sent: cannot parse for de-identification: " + err.Error()}
		}
		r, err := deid.Deidentify(in, d.deidOpts)
		if err != nil {
			return sendResult{status: StatusNotSent, reason: ReasonDeid, msg: "not sent: " + err.Error()}
		}
		meta, off, err := dimse.ReadFileMeta(bytes.NewReader(r.Part10))
		if err != nil {
			return sendResult{status: StatusNotSent, reason: ReasonDeid, msg: "not sent: de-identified output unreadable: " + err.Error()}
		}
		p.out.Warnings = r.Warnings
		p.out.SentSOPInstanceUID = r.SOPInstanceUID
		p.out.SentStudyInstanceUID = keys.UID(in.StudyInstanceUID())
		sop, class, ts = r.SOPInstanceUID, meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID
		ds, size = bytes.NewReader(r.Part10[off:]), int64(len(r.Part10))-off
	} else {
		f, err := openStream(ctx, e.opts.Source, p.ref, e.opts.MaxInstanceBytes)
		if err != nil {
			return sendResult{status: StatusNotSent, reason: ReasonRead, msg: err.Error()}
		}
		defer f.closer.Close()
		if f.meta.MediaStorageSOPInstanceUID != p.ref.SOPInstanceUID {
			return sendResult{status: StatusNotSent, reason: ReasonRead, msg: fmt.Sprintf("stored file holds SOP Instance UID %s", f.meta.MediaStorageSOPInstanceUID)}
		}
		sop, class, ts = p.ref.SOPInstanceUID, f.meta.MediaStorageSOPClassUID, f.meta.TransferSyntaxUID
		ds, size = f.ds, f.dsSize
		p.out.SentSOPInstanceUID, p.out.SentStudyInstanceUID = p.ref.SOPInstanceUID, p.ref.StudyInstanceUID
	}
	p.out.TransferSyntaxUID = ts
	if class != p.ref.SOPClassUID {
		p.out.SOPClassUID = class
	}
	src := &srcReader{r: ds}
	st, err := cl.Store(ctx, class, sop, ts, src, size)
	switch {
	case err == nil:
		p.out.DIMSEStatus = fmt.Sprintf("%04X", st)
		switch {
		case st == dimse.StatusSuccess:
			return sendResult{status: StatusSent}
		case st&0xF000 == 0xB000:
			return sendResult{status: StatusWarning, reason: ReasonDIMSEStatus, msg: fmt.Sprintf("stored with warning status 0x%04X", st)}
		}
		return sendResult{status: StatusFailed, reason: ReasonDIMSEStatus, msg: fmt.Sprintf("destination answered status 0x%04X (%s)", st, statusText(st))}
	case src.err != nil:
		// The data set was cut short: the association is unusable.
		return sendResult{status: StatusNotSent, reason: ReasonRead, msg: "reading the stored instance: " + src.err.Error(), broken: true}
	case errors.Is(err, dimse.ErrNoPresentationContext):
		return sendResult{status: StatusNotSent, reason: ReasonPresentationContext, msg: err.Error()}
	case errors.Is(err, dimse.ErrInvalidArgument):
		return sendResult{status: StatusNotSent, reason: ReasonRead, msg: err.Error()}
	}
	return sendResult{transportErr: err}
}

func (e *Exporter) openAll(ctx context.Context, ref Ref) ([]byte, error) {
	rc, err := e.opts.Source.Open(ctx, ref.SOPInstanceUID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readAll(rc, e.opts.MaxInstanceBytes)
}

// statusText names the C-STORE failure statuses of PS3.4 B.2.3 and PS3.7 C.
func statusText(st uint16) string {
	switch {
	case st&0xFF00 == 0xA700:
		return "Refused: Out of Resources"
	case st&0xFF00 == 0xA900:
		return "Error: Data Set does not match SOP Class"
	case st&0xF000 == 0xC000:
		return "Error: Cannot understand"
	case st == 0x0122:
		return "Refused: SOP Class not supported"
	case st == 0x0124:
		return "Refused: Not authorized"
	case st == 0x0110:
		return "Processing failure"
	case st == 0x0111:
		return "Duplicate SOP Instance"
	case st == 0x0117:
		return "Invalid SOP Instance"
	}
	return "failure"
}
