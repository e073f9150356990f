package export

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radflow/radflow/internal/deid"
	"github.com/radflow/radflow/internal/dicom"
	"github.com/radflow/radflow/internal/dimse"
)

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkInternal exports the MR study to p and checks that every data set
// arrived byte for byte, in its stored transfer syntax.
func checkInternal(t *testing.T, p pacs, aet string) {
	files := mrStudy(t)
	src := newSource(t, files...)
	aud := &recAuditor{}
	e := newExporter(t, config(t, p.addr(), aet, false, ""), src, aud)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if res.Sent != 3 || res.Failed != 0 || res.Associations != 1 || len(res.Outcomes) != 3 {
		t.Fatalf("result = sent %d failed %d associations %d outcomes %d, want 3 0 1 3", res.Sent, res.Failed, res.Associations, len(res.Outcomes))
	}
	got := p.received(t)
	if len(got) != 3 {
		t.Fatalf("destination stored %d instances, want 3", len(got))
	}
	for i, f := range files {
		meta, ds := dataSetOf(t, readFile(t, f))
		o := res.Outcomes[i]
		if o.SOPInstanceUID != meta.MediaStorageSOPInstanceUID || o.Status != StatusSent || o.DIMSEStatus != "0000" || o.Attempts != 1 ||
			o.SentSOPInstanceUID != o.SOPInstanceUID || o.TransferSyntaxUID != dimse.ImplicitVRLittleEndian {
			t.Errorf("outcome %d = %+v", i, o)
		}
		r, ok := got[meta.MediaStorageSOPInstanceUID]
		if !ok {
			t.Fatalf("%s not received", meta.MediaStorageSOPInstanceUID)
		}
		if !bytes.Equal(r.ds, ds) {
			t.Errorf("%s: received data set of %d bytes differs from the stored %d bytes", meta.MediaStorageSOPInstanceUID, len(r.ds), len(ds))
		}
		if r.meta.TransferSyntaxUID != meta.TransferSyntaxUID || r.meta.MediaStorageSOPClassUID != meta.MediaStorageSOPClassUID {
			t.Errorf("received meta %+v, want TS %s class %s", r.meta, meta.TransferSyntaxUID, meta.MediaStorageSOPClassUID)
		}
	}
	if len(aud.events) != 3 {
		t.Fatalf("%d audit events, want 3", len(aud.events))
	}
	for _, ev := range aud.events {
		if ev.External || ev.Auto || ev.Status != StatusSent || ev.StudyInstanceUID != mrStudyUID || ev.SentStudyInstanceUID != mrStudyUID ||
			ev.SentSOPInstanceUID != ev.SOPInstanceUID || ev.DIMSEStatus != "0000" || ev.AETitle != aet {
			t.Errorf("audit event %+v", ev)
		}
	}
}

func TestExportStudyInternalStorescp(t *testing.T) {
	checkInternal(t, startStorescp(t), "PACS")
}

func TestExportStudyInternalGoSCP(t *testing.T) {
	checkInternal(t, startGoSCP(t, dimse.Config{}), "GOPACS")
}

// checkExternal exports the MR study to an external destination: what
// arrives is de-identified, with consistent new UIDs and the pixel data
// bytes unchanged.
func checkExternal(t *testing.T, p pacs, aet string) {
	files := mrStudy(t)
	src := newSource(t, files...)
	for _, f := range files { // the originals do carry the identifiers looked for below
		b := readFile(t, f)
		if !bytes.Contains(b, []byte(mrPatientName)) || !bytes.Contains(b, []byte(mrPatientID)) {
			t.Fatalf("%s lacks the expected patient name or ID", f)
		}
	}
	aud := &recAuditor{}
	e := newExporter(t, config(t, p.addr(), aet, true, ""), src, aud)
	keys := deid.NewKeys(e.dests["dest"].deidOpts.ProjectSecret)
	wantStudy := keys.UID(mrStudyUID)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if res.Sent != 3 || !res.External {
		t.Fatalf("result %+v", res)
	}
	got := p.received(t)
	if len(got) != 3 {
		t.Fatalf("destination stored %d instances, want 3", len(got))
	}
	series := map[string]bool{}
	for i, f := range files {
		orig, err := dicom.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o := res.Outcomes[i]
		if o.SentSOPInstanceUID == "" || o.SentSOPInstanceUID == o.SOPInstanceUID || o.SentSOPInstanceUID != keys.UID(o.SOPInstanceUID) ||
			o.SentStudyInstanceUID != wantStudy || o.TransferSyntaxUID != dimse.ExplicitVRLittleEndian || o.Status != StatusSent {
			t.Errorf("outcome %d = %+v", i, o)
		}
		if _, ok := got[o.SOPInstanceUID]; ok {
			t.Errorf("the original SOP Instance UID %s reached the external destination", o.SOPInstanceUID)
		}
		r, ok := got[o.SentSOPInstanceUID]
		if !ok {
			t.Fatalf("%s not received", o.SentSOPInstanceUID)
		}
		for _, phi := range []string{mrPatientName, "ABD.ALLAH", mrPatientID, mrStudyUID, o.SOPInstanceUID} {
			if bytes.Contains(r.ds, []byte(phi)) {
				t.Errorf("%s: received data set contains %q", o.SentSOPInstanceUID, phi)
			}
		}
		var part10 bytes.Buffer
		if _, err := dimse.WritePart10(&part10, r.meta, bytes.NewReader(r.ds)); err != nil {
			t.Fatal(err)
		}
		in, err := dicom.ParseBytes(part10.Bytes())
		if err != nil {
			t.Fatalf("received instance does not parse: %v", err)
		}
		if in.StudyInstanceUID() != wantStudy || in.SOPInstanceUID() != o.SentSOPInstanceUID {
			t.Errorf("received study %s SOP %s, want %s %s", in.StudyInstanceUID(), in.SOPInstanceUID(), wantStudy, o.SentSOPInstanceUID)
		}
		if in.SeriesInstanceUID() != keys.UID(orig.SeriesInstanceUID()) {
			t.Errorf("series UID %s, want the keyed %s", in.SeriesInstanceUID(), keys.UID(orig.SeriesInstanceUID()))
		}
		series[in.SeriesInstanceUID()] = true
		if v := in.String(dicomTag(0x0012, 0x0062)); v != "YES" {
			t.Errorf("Patient Identity Removed = %q", v)
		}
		if v := in.String(dicomTag(0x0010, 0x0020)); v == mrPatientID {
			t.Errorf("Patient ID kept")
		}
		op, np := orig.PixelData(), in.PixelData()
		if op == nil || np == nil || len(op.Native) != 256*256*2 || !bytes.Equal(op.Native, np.Native) {
			t.Errorf("pixel data changed (%d -> %d bytes)", len(op.Native), len(np.Native))
		}
	}
	if len(aud.events) != 3 {
		t.Fatalf("%d audit events", len(aud.events))
	}
	for _, ev := range aud.events {
		if !ev.External || ev.StudyInstanceUID != mrStudyUID || ev.SentStudyInstanceUID != wantStudy || ev.SentSOPInstanceUID == ev.SOPInstanceUID {
			t.Errorf("audit event %+v", ev)
		}
	}
}

func TestExportExternalDeidStorescp(t *testing.T) {
	checkExternal(t, startStorescp(t), "PACS")
}

func TestExportExternalDeidGoSCP(t *testing.T) {
	checkExternal(t, startGoSCP(t, dimse.Config{}), "GOPACS")
}

func TestExportIncludeSR(t *testing.T) {
	files := mrStudy(t)
	src := newSource(t, files...)
	srRef := addResultSR(t, src, files[0])
	g := startGoSCP(t, dimse.Config{})
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil || res.Sent != 3 {
		t.Fatalf("without SRs: %v, %+v", err, res)
	}
	if _, ok := g.received(t)[srRef.SOPInstanceUID]; ok {
		t.Fatal("result SR sent without IncludeSR")
	}
	res, err = e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID, IncludeSR: true})
	if err != nil || res.Sent != 4 || res.Associations != 1 {
		t.Fatalf("with SRs: %v, %+v", err, res)
	}
	r, ok := g.received(t)[srRef.SOPInstanceUID]
	if !ok || r.meta.MediaStorageSOPClassUID != "1.2.840.10008.5.1.4.1.1.88.33" {
		t.Fatalf("SR not received as Comprehensive SR: %+v", r.meta)
	}
	_, ds := dataSetOf(t, src.data[srRef.SOPInstanceUID])
	if !bytes.Equal(r.ds, ds) {
		t.Error("SR data set changed")
	}
}

// addResultSR builds a real result SR for the instance at path and adds
// it to src as a result.
func addResultSR(t testing.TB, src *fakeSource, path string) Ref {
	t.Helper()
	in, err := dicom.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := dicom.BuildResultSR(in, dicom.ResultSR{ModelName: "lspine-test", ModelVersion: "1",
		Labels: []string{"normal", "abnormal"}, Probabilities: []float64{0.25, 0.75}, Label: "abnormal"})
	if err != nil {
		t.Fatal(err)
	}
	return src.add(t, sr.Data, true)
}

func TestExportDestinationRefused(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	aud := &recAuditor{}
	addr := net.JoinHostPort("127.0.0.1", freePort(t))
	e := newExporter(t, config(t, addr, "PACS", false, ""), src, aud)
	start := time.Now()
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if !errors.Is(err, ErrDestinationUnavailable) || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("err = %v, want ErrDestinationUnavailable naming the refused connection and 3 attempts", err)
	}
	// Two backoffs of 10 ms and 20 ms (±10%) were waited.
	if d := time.Since(start); d < 27*time.Millisecond {
		t.Errorf("export returned after %v: no backoff between attempts", d)
	}
	if res == nil || res.Sent != 0 || res.Failed != 3 || res.Associations != 0 {
		t.Fatalf("result %+v", res)
	}
	for _, o := range res.Outcomes {
		if o.Status != StatusNotSent || o.Reason != ReasonNetwork || !strings.Contains(o.Error, "refused") {
			t.Errorf("outcome %+v", o)
		}
	}
	if len(aud.events) != 3 || aud.events[0].Status != StatusNotSent || aud.events[0].Reason != ReasonNetwork {
		t.Errorf("audit events %+v", aud.events)
	}
}

// TestExportRetriesDroppedConnections: a destination that accepts TCP
// connections and closes them at once is tried retry.attempts times.
func TestExportRetriesDroppedConnections(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	e := newExporter(t, config(t, l.Addr().String(), "PACS", false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if !errors.Is(err, ErrDestinationUnavailable) || res == nil || res.Failed != 3 {
		t.Fatalf("err = %v, result %+v", err, res)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (retry.attempts)", n)
	}
}

// TestExportRetryThenSuccess: the first connection is dropped, the second
// reaches the SCP; everything arrives on the second association.
func TestExportRetryThenSuccess(t *testing.T) {
	files := mrStudy(t)
	src := newSource(t, files...)
	g := startGoSCP(t, dimse.Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if conns.Add(1) == 1 {
				c.Close()
				continue
			}
			go proxy(c, g.addr())
		}
	}()
	e := newExporter(t, config(t, l.Addr().String(), "GOPACS", false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil || res.Sent != 3 || res.Associations != 1 {
		t.Fatalf("err = %v, result %+v", err, res)
	}
	if n := conns.Load(); n != 2 || len(g.received(t)) != 3 {
		t.Fatalf("%d connections, %d received; want 2, 3", n, len(g.received(t)))
	}
}

func proxy(c net.Conn, to string) {
	defer c.Close()
	u, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
}

func TestExportAssociationRejectedPermanentNotRetried(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	g := startGoSCP(t, dimse.Config{CheckCalledAETitle: true})
	e := newExporter(t, config(t, g.addr(), "WRONGAE", false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if !errors.Is(err, ErrDestinationUnavailable) || !errors.Is(err, dimse.ErrAssociationRejected) || !strings.Contains(err.Error(), "called AE title") ||
		!strings.Contains(err.Error(), "after 1 attempts") {
		t.Fatalf("err = %v", err)
	}
	if res.Outcomes[0].Reason != ReasonNetwork || res.Associations != 0 {
		t.Fatalf("result %+v", res)
	}
}

// checkTSRejected sends an Implicit VR MR and an Explicit VR CT to a
// destination that accepts only one of them: the other is reported per
// instance, the accepted one is stored.
func checkTSRejected(t *testing.T, p pacs, aet, rejectedTS string) {
	mr := mrStudy(t)[0]
	ct := filepath.Join(sharedDICOM(t, "debian-python3-pydicom"), "CT_small.dcm")
	src := newSource(t, mr, ct)
	e := newExporter(t, config(t, p.addr(), aet, false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", SOPInstanceUIDs: []string{src.refs[0].SOPInstanceUID, src.refs[1].SOPInstanceUID}})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if res.Sent != 1 || res.Failed != 1 || res.Associations != 1 {
		t.Fatalf("result %+v", res)
	}
	for i, o := range res.Outcomes {
		if src.refs[i].TransferSyntaxUID == rejectedTS {
			if o.Status != StatusNotSent || o.Reason != ReasonPresentationContext || !strings.Contains(o.Error, "not accepted") || o.DIMSEStatus != "" {
				t.Errorf("rejected instance outcome %+v", o)
			}
		} else if o.Status != StatusSent {
			t.Errorf("accepted instance outcome %+v", o)
		}
	}
	if n := len(p.received(t)); n != 1 {
		t.Errorf("%d instances received, want 1", n)
	}
}

func TestExportTransferSyntaxRejectedStorescp(t *testing.T) {
	// +xi: storescp accepts Implicit VR Little Endian only.
	checkTSRejected(t, startStorescp(t, "+xi"), "PACS", dimse.ExplicitVRLittleEndian)
}

func TestExportTransferSyntaxRejectedGoSCP(t *testing.T) {
	g := startGoSCP(t, dimse.Config{TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}})
	checkTSRejected(t, g, "GOPACS", dimse.ImplicitVRLittleEndian)
}

func TestExportFailureStatusReported(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	g := startGoSCP(t, dimse.Config{})
	g.err = dimse.ErrDataSetMismatch
	aud := &recAuditor{}
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, aud)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if res.Failed != 3 || res.Associations != 1 {
		t.Fatalf("result %+v", res)
	}
	for _, o := range res.Outcomes {
		if o.Status != StatusFailed || o.Reason != ReasonDIMSEStatus || o.DIMSEStatus != "A900" || o.Attempts != 1 || !strings.Contains(o.Error, "does not match SOP Class") {
			t.Errorf("outcome %+v", o)
		}
	}
	if aud.events[0].DIMSEStatus != "A900" || aud.events[0].Status != StatusFailed {
		t.Errorf("audit %+v", aud.events[0])
	}
}

func TestExportWarningStatus(t *testing.T) {
	src := newSource(t, mrStudy(t)[:1]...)
	g := startGoSCP(t, dimse.Config{})
	g.status = 0xB000
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil || res.Sent != 1 || res.Outcomes[0].Status != StatusWarning || res.Outcomes[0].DIMSEStatus != "B000" {
		t.Fatalf("%v %+v", err, res)
	}
}

// minimalPart10 is an instance whose data set has a Patient Name and a
// Study Instance UID but no SOP Class/Instance UID: deid refuses it.
func minimalPart10(t testing.TB, sop string) []byte {
	t.Helper()
	var ds []byte
	ds = append(ds, 0x10, 0x00, 0x10, 0x00, 'P', 'N', 8, 0)
	ds = append(ds, "DOE^JANE"...)
	ds = append(ds, 0x20, 0x00, 0x0D, 0x00, 'U', 'I', 6, 0)
	ds = append(ds, "1.2.3\x00"...)
	var b bytes.Buffer
	if _, err := dimse.WritePart10(&b, dimse.FileMeta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.4", MediaStorageSOPInstanceUID: sop,
		TransferSyntaxUID: dimse.ExplicitVRLittleEndian}, bytes.NewReader(ds)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestExportExternalDeidFailureNotSent(t *testing.T) {
	src := newSource(t, mrStudy(t)[0])
	bad := src.add(t, minimalPart10(t, "1.2.3.4.5"), false)
	g := startGoSCP(t, dimse.Config{})
	aud := &recAuditor{}
	e := newExporter(t, config(t, g.addr(), "GOPACS", true, ""), src, aud)
	res, err := e.Export(context.Background(), Request{Destination: "dest", SOPInstanceUIDs: []string{src.refs[0].SOPInstanceUID, bad.SOPInstanceUID}})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	o := res.Outcomes[1]
	if res.Sent != 1 || o.Status != StatusNotSent || o.Reason != ReasonDeid || !strings.Contains(o.Error, "SOP") || o.SentSOPInstanceUID != "" {
		t.Fatalf("result %+v", res)
	}
	got := g.received(t)
	if len(got) != 1 {
		t.Fatalf("%d received, want 1", len(got))
	}
	for _, r := range got {
		if bytes.Contains(r.ds, []byte("DOE^JANE")) {
			t.Fatal("PHI of the refused instance reached the external destination")
		}
	}
	if len(aud.events) != 2 || aud.events[1].Reason != ReasonDeid || aud.events[1].SentSOPInstanceUID != "" {
		t.Errorf("audit %+v", aud.events)
	}
}

func TestExportAuditFailureStops(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	g := startGoSCP(t, dimse.Config{})
	aud := &recAuditor{failAt: 2}
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, aud)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if !errors.Is(err, ErrAudit) || res == nil {
		t.Fatalf("err = %v", err)
	}
	if res.Outcomes[0].Status != StatusSent || res.Outcomes[1].Status != StatusSent || res.Outcomes[2].Status != StatusNotSent || res.Outcomes[2].Reason != ReasonAudit {
		t.Fatalf("outcomes %+v", res.Outcomes)
	}
	if n := len(g.received(t)); n != 2 {
		t.Fatalf("%d received after the audit failure, want 2", n)
	}
}

func TestExportShortBlobReported(t *testing.T) {
	files := mrStudy(t)
	src := newSource(t, files...)
	// The second instance's blob is truncated: recorded size > bytes.
	sop := src.refs[1].SOPInstanceUID
	src.data[sop] = src.data[sop][:len(src.data[sop])-1000]
	g := startGoSCP(t, dimse.Config{})
	e := newExporter(t, config(t, g.addr(), "GOPACS", false, ""), src, nil)
	res, err := e.Export(context.Background(), Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	o := res.Outcomes[1]
	if o.Status != StatusNotSent || o.Reason != ReasonRead || !strings.Contains(o.Error, "shorter") {
		t.Fatalf("truncated instance outcome %+v", o)
	}
	// The association carrying the cut data set is aborted; the third
	// instance goes on a new one.
	if res.Sent != 2 || res.Associations != 2 || res.Outcomes[2].Status != StatusSent {
		t.Fatalf("result %+v", res)
	}
	if _, ok := g.received(t)[sop]; ok {
		t.Fatal("truncated instance stored by the destination")
	}
}

func TestExportRequestErrors(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	e := newExporter(t, config(t, "127.0.0.1:1", "PACS", false, ""), src, nil)
	ctx := context.Background()
	cases := []struct {
		req  Request
		want error
	}{
		{Request{Destination: "nope", StudyInstanceUID: mrStudyUID}, ErrUnknownDestination},
		{Request{Destination: "dest"}, ErrInvalidRequest},
		{Request{Destination: "dest", StudyInstanceUID: mrStudyUID, SOPInstanceUIDs: []string{"1.2"}}, ErrInvalidRequest},
		{Request{Destination: "dest", StudyInstanceUID: "1.2.x"}, ErrInvalidRequest},
		{Request{Destination: "dest", SOPInstanceUIDs: []string{"01..2"}}, ErrInvalidRequest},
		{Request{Destination: "dest", StudyInstanceUID: "1.2.3.4"}, ErrNotFound},
		{Request{Destination: "dest", SOPInstanceUIDs: []string{"1.2.3.4"}}, ErrNotFound},
	}
	for _, c := range cases {
		res, err := e.Export(ctx, c.req)
		if !errors.Is(err, c.want) || res != nil {
			t.Errorf("Export(%+v) = %v, %v; want %v", c.req, res, err, c.want)
		}
	}
}

func TestExportAuthorize(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	var gotStudies []string
	e, err := New(config(t, "127.0.0.1:1", "PACS", true, ""), Options{Source: src, Logger: quietLogger(),
		Authorize: func(_ context.Context, d DestinationInfo, studies []string) error {
			gotStudies = studies
			if d.External {
				return ErrForbidden
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Export(context.Background(), Request{Destination: "dest", SOPInstanceUIDs: []string{src.refs[0].SOPInstanceUID, src.refs[2].SOPInstanceUID}})
	if !errors.Is(err, ErrForbidden) || len(gotStudies) != 1 || gotStudies[0] != mrStudyUID {
		t.Fatalf("err = %v, studies %v", err, gotStudies)
	}
	if len(src.opens) != 0 {
		t.Fatal("instances were read before authorisation")
	}
}

func TestExportContextCanceled(t *testing.T) {
	src := newSource(t, mrStudy(t)...)
	addr := net.JoinHostPort("127.0.0.1", freePort(t))
	cfg := config(t, addr, "PACS", false, "")
	cfg.Destinations[0].Retry = Retry{Attempts: 10, Backoff: time.Hour, MaxBackoff: time.Hour}
	e := newExporter(t, cfg, src, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := e.Export(ctx, Request{Destination: "dest", StudyInstanceUID: mrStudyUID})
	if !errors.Is(err, context.DeadlineExceeded) || res.Outcomes[0].Reason != ReasonCanceled {
		t.Fatalf("err = %v, result %+v", err, res)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("returned after %v", d)
	}
}
