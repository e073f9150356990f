package dimse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var echoCtx = []PresentationContext{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}

func TestEchoGoToGo(t *testing.T) {
	_, addr := startServer(t, Config{}, &recorder{})
	cl := dial(t, addr, ClientConfig{}, echoCtx)
	for i := 0; i < 3; i++ {
		if err := cl.Echo(context.Background()); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	if err := cl.Release(context.Background()); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := cl.Echo(context.Background()); !errors.Is(err, ErrReleased) {
		t.Fatalf("echo after release = %v, want ErrReleased", err)
	}
}

func TestStoreGoToGoSmallPDU(t *testing.T) {
	path := filepath.Join(sharedDICOM(t, "cornerstoneWADOImageLoader"), "CTImage.dcm")
	want, meta := dataSetOf(t, path)
	rec := &recorder{}
	_, addr := startServer(t, Config{MaxPDULength: 4096}, rec)
	pcs, err := StorageContexts([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	cl := dial(t, addr, ClientConfig{MaxPDULength: 4096, CallingAETitle: "GOSCU"}, pcs)
	if got := cl.PeerMaxPDULength(); got != 4096 {
		t.Fatalf("peer max PDU = %d, want 4096", got)
	}
	st, err := cl.StoreFile(context.Background(), path)
	if err != nil || st != StatusSuccess {
		t.Fatalf("StoreFile = 0x%04X, %v", st, err)
	}
	if err := cl.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rec.all()
	if len(got) != 1 {
		t.Fatalf("%d stores received, want 1", len(got))
	}
	r := got[0]
	if r.Size != int64(len(want)) || r.Sum != sha256.Sum256(want) {
		t.Fatalf("received %d bytes, want %d identical bytes", r.Size, len(want))
	}
	if r.SOPClass != meta.MediaStorageSOPClassUID || r.SOPInstance != meta.MediaStorageSOPInstanceUID || r.TS != ImplicitVRLittleEndian || r.CallingAE != "GOSCU" {
		t.Fatalf("request fields %+v, meta %+v", r, meta)
	}
}

// TestWritePDVsSplitsToPeerMax checks the PDU framing on the wire: every
// P-DATA-TF fits the peer's maximum, fragments are marked, odd sizes padded.
func TestWritePDVsSplitsToPeerMax(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := newConn(a)
	c.peerMax = 4096
	data := bytes.Repeat([]byte{0xAB}, 10001) // odd
	go func() { c.writePDVs(5, false, bytes.NewReader(data), int64(len(data))); a.Close() }()
	var got []byte
	pdus := 0
	for {
		var h [12]byte
		if _, err := io.ReadFull(b, h[:]); err != nil {
			break
		}
		pdus++
		l := binary.BigEndian.Uint32(h[2:])
		if l > 4096 || h[0] != pduPDataTF || h[10] != 5 {
			t.Fatalf("PDU %d: type %d length %d ctx %d", pdus, h[0], l, h[10])
		}
		chunk := make([]byte, l-6)
		io.ReadFull(b, chunk)
		got = append(got, chunk...)
		last := h[11]&2 != 0
		if last != (len(got) == 10002) || h[11]&1 != 0 {
			t.Fatalf("PDU %d: message control header 0x%02x at %d bytes", pdus, h[11], len(got))
		}
	}
	if pdus != 3 || len(got) != 10002 || got[10001] != 0 || !bytes.Equal(got[:10001], data) {
		t.Fatalf("%d PDUs, %d bytes (want 3 PDUs, 10002 bytes with a zero pad)", pdus, len(got))
	}
}

func TestStoreOddLengthPadded(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, Config{}, rec)
	const class = "1.2.840.10008.5.1.4.1.1.7"
	cl := dial(t, addr, ClientConfig{}, []PresentationContext{{AbstractSyntax: class, TransferSyntaxes: []string{ExplicitVRLittleEndian}}})
	defer cl.Release(context.Background())
	ds := []byte{0x08, 0x00, 0x16, 0x00, 'U', 'I', 0x00} // 7 bytes
	st, err := cl.Store(context.Background(), class, "1.2.3.4", ExplicitVRLittleEndian, bytes.NewReader(ds), int64(len(ds)))
	if err != nil || st != 0 {
		t.Fatalf("Store = 0x%04X, %v", st, err)
	}
	got := rec.all()
	if len(got) != 1 || !bytes.Equal(got[0].Data, append(ds, 0)) {
		t.Fatalf("received %+v, want the 7 bytes plus a zero pad", got)
	}
}

func TestStoreStatuses(t *testing.T) {
	const class = "1.2.840.10008.5.1.4.1.1.7"
	rec := &recorder{}
	_, addr := startServer(t, Config{}, rec)
	cl := dial(t, addr, ClientConfig{}, []PresentationContext{{AbstractSyntax: class, TransferSyntaxes: []string{ExplicitVRLittleEndian}}, echoCtx[0]})
	defer cl.Release(context.Background())
	for _, tc := range []struct {
		status uint16
		err    error
		want   uint16
	}{
		{0, nil, 0x0000},
		{0xB000, nil, 0xB000},
		{0, ErrOutOfResources, 0xA700},
		{0, ErrDataSetMismatch, 0xA900},
		{0, ErrCannotUnderstand, 0xC000},
		{0, errors.New("patient Doe broke it"), 0x0110},
	} {
		rec.mu.Lock()
		rec.status, rec.err = tc.status, tc.err
		rec.mu.Unlock()
		st, err := cl.Store(context.Background(), class, "1.2.3", ExplicitVRLittleEndian, bytes.NewReader([]byte{1, 2}), 2)
		if err != nil || st != tc.want {
			t.Fatalf("handler (0x%04X, %v): status 0x%04X, %v; want 0x%04X", tc.status, tc.err, st, err, tc.want)
		}
	}
	// Bypass the client's UID check: a malformed Affected SOP Instance UID
	// gets 0xC000 with Offending Element (0000,1000) and the association lives on.
	n := len(rec.all())
	pc, _ := cl.findContext(class, ExplicitVRLittleEndian)
	for _, bad := range []string{"1.2.abc", strings.Repeat("1.", 40) + "1", "1..2"} {
		rq := command{}
		rq.setUS(tagCommandField, cmdCStoreRQ)
		rq.setUI(tagAffectedSOPClassUID, class)
		rq.setUI(tagAffectedSOPInstanceUID, bad)
		rsp, err := cl.roundTrip(context.Background(), pc, rq, bytes.NewReader([]byte{1, 2}), 2, cmdCStoreRSP)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := rsp.us(tagStatus)
		if st != StatusCannotUnderstand || !bytes.Equal(rsp[tagOffendingElement], []byte{0, 0, 0, 0x10}) {
			t.Fatalf("UID %q: status 0x%04X offending % x", bad, st, rsp[tagOffendingElement])
		}
	}
	if len(rec.all()) != n {
		t.Fatal("handler called for an invalid SOP Instance UID")
	}
	if err := cl.Echo(context.Background()); err != nil {
		t.Fatalf("echo after refused store: %v", err)
	}
}

func TestNegotiation(t *testing.T) {
	_, addr := startServer(t, Config{TransferSyntaxes: []string{ExplicitVRLittleEndian, JPEGBaseline8Bit, ExplicitVRBigEndian, ImplicitVRLittleEndian}, ExtraSOPClasses: []string{"1.2.840.10008.5.1.4.31"}}, &recorder{})
	ct := "1.2.840.10008.5.1.4.1.1.2"
	pcs := []PresentationContext{
		{AbstractSyntax: ct, TransferSyntaxes: []string{JPEG2000, JPEGBaseline8Bit, ExplicitVRLittleEndian}}, // → .50 (first proposed we accept)
		{AbstractSyntax: ct, TransferSyntaxes: []string{JPEG2000}},                                           // → rejected (4)
		{AbstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", TransferSyntaxes: []string{ExplicitVRLittleEndian}},  // C-FIND: rejected (3)
		{AbstractSyntax: "1.2.840.10008.5.1.4.31", TransferSyntaxes: []string{ExplicitVRLittleEndian}},       // configured extra
		{AbstractSyntax: ct, TransferSyntaxes: []string{ExplicitVRBigEndian, ImplicitVRLittleEndian}},        // → Implicit (Big Endian last)
		{AbstractSyntax: ct, TransferSyntaxes: []string{JPEG2000, ExplicitVRBigEndian}},                      // → Big Endian (nothing else)
	}
	for len(pcs) < 128 {
		pcs = append(pcs, PresentationContext{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}})
	}
	cl := dial(t, addr, ClientConfig{}, pcs)
	defer cl.Release(context.Background())
	acc := cl.Accepted()
	if len(acc) != 126 { // 128 - 2 rejected
		t.Fatalf("%d accepted contexts, want 126", len(acc))
	}
	if acc[0] != (AcceptedContext{ID: 1, AbstractSyntax: ct, TransferSyntax: JPEGBaseline8Bit}) || acc[1].ID != 7 || acc[4].ID != 13 || acc[4].TransferSyntax != ImplicitVRLittleEndian || acc[125].ID != 255 {
		t.Fatalf("accepted %+v ...", acc[:5])
	}
	if acc[2] != (AcceptedContext{ID: 9, AbstractSyntax: ct, TransferSyntax: ImplicitVRLittleEndian}) || acc[3] != (AcceptedContext{ID: 11, AbstractSyntax: ct, TransferSyntax: ExplicitVRBigEndian}) {
		t.Fatalf("Big Endian not taken last: %+v %+v", acc[2], acc[3])
	}
	_, err := cl.Store(context.Background(), ct, "1.2.3", ExplicitVRLittleEndian, bytes.NewReader(nil), 0)
	if !errors.Is(err, ErrNoPresentationContext) || !strings.Contains(err.Error(), JPEGBaseline8Bit) {
		t.Fatalf("store with unaccepted TS: %v", err)
	}
	if err := cl.Echo(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAssociatePDURoundTrip(t *testing.T) {
	rq := &associateParams{ProtocolVersion: 1, CalledAE: "CALLED", CallingAE: "CALLING", AppContext: ApplicationContextName,
		Contexts:  []presentationContext{{ID: 1, AbstractSyntax: "1.2.3", TransferSyntaxes: []string{"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}}},
		MaxLength: 16384, ImplClassUID: "1.2.3.4", ImplVersion: "X_1", AsyncOps: &[2]uint16{5, 3},
		Roles: []roleSelection{{SOPClassUID: "1.2.3", SCU: true, SCP: true}}}
	b := encodeAssociate(pduAssociateRQ, rq)
	if int(binary.BigEndian.Uint32(b[2:])) != len(b)-6 {
		t.Fatal("bad PDU length")
	}
	got, err := decodeAssociate(pduAssociateRQ, b[6:])
	if err != nil {
		t.Fatal(err)
	}
	if got.CalledAE != "CALLED" || got.CallingAE != "CALLING" || got.MaxLength != 16384 || got.ImplVersion != "X_1" || *got.AsyncOps != [2]uint16{5, 3} ||
		len(got.Roles) != 1 || !got.Roles[0].SCU || !got.Roles[0].SCP || got.Contexts[0].TransferSyntaxes[1] != "1.2.840.10008.1.2.1" {
		t.Fatalf("decoded %+v", got)
	}
	// Every truncation of the body must fail cleanly.
	for i := 0; i < len(b)-6; i++ {
		if _, err := decodeAssociate(pduAssociateRQ, b[6:6+i]); err == nil {
			t.Fatalf("truncated to %d bytes decoded without error", i)
		}
	}
	// Negotiated answer: async window 1,1 and SCU role only.
	s := &Server{cfg: Config{MaxPDULength: 4096, TransferSyntaxes: DefaultTransferSyntaxes()}}
	rq.Contexts[0].AbstractSyntax = "1.2.840.10008.5.1.4.1.1.2"
	a := &association{s: s, c: newConn(nil), rq: rq}
	ac := a.negotiate()
	if *ac.AsyncOps != [2]uint16{1, 1} || len(ac.Roles) != 1 || !ac.Roles[0].SCU || ac.Roles[0].SCP || ac.Contexts[0].TransferSyntaxes[0] != ImplicitVRLittleEndian {
		t.Fatalf("AC %+v", ac)
	}
}

func TestRejections(t *testing.T) {
	_, addr := startServer(t, Config{AETitle: "RADFLOW", CheckCalledAETitle: true, AllowedCallingAETitles: []string{"GOOD"}, MaxAssociations: 1}, &recorder{})
	check := func(cfg ClientConfig, result, source, reason byte) {
		t.Helper()
		_, err := Dial(context.Background(), addr, cfg, echoCtx)
		var rj *RejectError
		if !errors.As(err, &rj) || !errors.Is(err, ErrAssociationRejected) || *rj != (RejectError{result, source, reason}) {
			t.Fatalf("Dial(%+v) = %v, want reject %d/%d/%d", cfg, err, result, source, reason)
		}
	}
	check(ClientConfig{CallingAETitle: "GOOD", CalledAETitle: "OTHER"}, 1, 1, 7)
	check(ClientConfig{CallingAETitle: "EVIL", CalledAETitle: "RADFLOW"}, 1, 1, 3)
	cl := dial(t, addr, ClientConfig{CallingAETitle: "GOOD", CalledAETitle: "RADFLOW"}, echoCtx)
	check(ClientConfig{CallingAETitle: "GOOD", CalledAETitle: "RADFLOW"}, 2, 3, 2) // local limit exceeded
	if err := cl.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The slot is free again once the first association has ended.
	var err error
	for i := 0; i < 50; i++ {
		var c2 *Client
		if c2, err = Dial(context.Background(), addr, ClientConfig{CallingAETitle: "GOOD", CalledAETitle: "RADFLOW"}, echoCtx); err == nil {
			c2.Release(context.Background())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// readAbort reads from a raw connection until it finds an A-ABORT PDU or EOF.
func readAbort(t *testing.T, nc net.Conn) []byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var h [6]byte
		if _, err := io.ReadFull(nc, h[:]); err != nil {
			t.Fatalf("no A-ABORT before %v", err)
		}
		body := make([]byte, min(binary.BigEndian.Uint32(h[2:]), 1<<20))
		io.ReadFull(nc, body)
		if h[0] == pduAbort {
			// The transport must then be closed.
			if _, err := nc.Read(make([]byte, 1)); err == nil {
				t.Fatal("connection still open after A-ABORT")
			}
			return body
		}
	}
}

func TestHostilePDULengths(t *testing.T) {
	_, addr := startServer(t, Config{MaxPDULength: 16384}, &recorder{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	// 1. A-ASSOCIATE-RQ claiming 4 GiB.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte{pduAssociateRQ, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1})
	if body := readAbort(t, nc); body[2] != abortSourceProvider || body[3] != abortReasonInvalidParam {
		t.Fatalf("abort % x", body)
	}
	nc.Close()

	// 2. After association, a P-DATA-TF larger than we advertised.
	cl := dial(t, addr, ClientConfig{}, echoCtx)
	cl.c.write([]byte{pduPDataTF, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 4, 1, 3})
	if err := cl.Echo(context.Background()); !errors.Is(err, ErrAborted) {
		t.Fatalf("echo after hostile P-DATA = %v, want ErrAborted", err)
	}

	// 3. A PDV item length beyond its PDU, and an unknown PDU type.
	for _, pdu := range [][]byte{
		{pduPDataTF, 0, 0, 0, 0, 10, 0xFF, 0xFF, 0xFF, 0xF0, 1, 3, 0, 0, 0, 0},
		{0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0},
	} {
		cl := dial(t, addr, ClientConfig{}, echoCtx)
		cl.c.write(pdu)
		if err := cl.Echo(context.Background()); !errors.Is(err, ErrAborted) {
			t.Fatalf("echo after hostile PDU % x = %v, want ErrAborted", pdu[:2], err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
		t.Fatalf("hostile lengths allocated %d bytes", d)
	}
}

func TestAbortMidTransferStoresNothing(t *testing.T) {
	rec := &recorder{}
	tmp := t.TempDir()
	s, addr := startServer(t, Config{TempDir: tmp}, rec)
	const class = "1.2.840.10008.5.1.4.1.1.7"
	cl := dial(t, addr, ClientConfig{}, []PresentationContext{{AbstractSyntax: class, TransferSyntaxes: []string{ExplicitVRLittleEndian}}})
	rq := command{}
	rq.setUS(tagCommandField, cmdCStoreRQ)
	rq.setUS(tagMessageID, 1)
	rq.setUI(tagAffectedSOPClassUID, class)
	rq.setUI(tagAffectedSOPInstanceUID, "1.2.3")
	rq.setUS(tagCommandDataSetType, 0)
	enc := rq.encode()
	if err := cl.c.writePDVs(1, true, bytes.NewReader(enc), int64(len(enc))); err != nil {
		t.Fatal(err)
	}
	// Half a data set: a non-last fragment, then A-ABORT.
	frag := []byte{pduPDataTF, 0, 0, 0, 0, 10, 0, 0, 0, 6, 1, 0, 1, 2, 3, 4}
	if err := cl.c.write(frag); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	cl.Abort()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil { // waits for the association goroutine
		t.Fatal(err)
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("handler called %d times for an aborted transfer", n)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("temp files left: %v", ents)
	}
}

func TestARTIMClosesSilentConnection(t *testing.T) {
	_, addr := startServer(t, Config{AssociationTimeout: 100 * time.Millisecond}, &recorder{})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read = %d, %v; want EOF after ARTIM expiry", n, err)
	}
}

func TestIdleTimeoutAborts(t *testing.T) {
	_, addr := startServer(t, Config{IdleTimeout: 100 * time.Millisecond}, &recorder{})
	cl := dial(t, addr, ClientConfig{}, echoCtx)
	nc := cl.c.nc
	if body := readAbort(t, nc); body[2] != abortSourceProvider {
		t.Fatalf("abort % x", body)
	}
}

func TestShutdownAbortsAtDeadline(t *testing.T) {
	s, addr := startServer(t, Config{}, &recorder{})
	cl := dial(t, addr, ClientConfig{}, echoCtx)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if err := cl.Echo(context.Background()); !errors.Is(err, ErrAborted) {
		t.Fatalf("echo after shutdown = %v, want ErrAborted", err)
	}
	if _, err := Dial(context.Background(), addr, ClientConfig{}, echoCtx); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}

func TestContextCancelAbortsStore(t *testing.T) {
	_, addr := startServer(t, Config{}, &recorder{})
	const class = "1.2.840.10008.5.1.4.1.1.7"
	cl := dial(t, addr, ClientConfig{}, []PresentationContext{{AbstractSyntax: class, TransferSyntaxes: []string{ExplicitVRLittleEndian}}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := cl.Store(ctx, class, "1.2.3", ExplicitVRLittleEndian, slowReader{}, 1<<30)
	if !errors.Is(err, ErrAborted) {
		t.Fatalf("Store after cancel = %v, want ErrAborted", err)
	}
}

func TestPart10RoundTrip(t *testing.T) {
	path := filepath.Join(sharedDICOM(t, "cornerstoneWADOImageLoader"), "CTImage.dcm")
	ds, meta := dataSetOf(t, path)
	out := filepath.Join(t.TempDir(), "x.dcm")
	meta.ImplementationClassUID = ""
	meta.SourceApplicationEntityTitle = "ODD"
	if err := WritePart10File(out, meta, bytes.NewReader(ds)); err != nil {
		t.Fatal(err)
	}
	got, gmeta := dataSetOf(t, out)
	if !bytes.Equal(got, ds) || gmeta.MediaStorageSOPInstanceUID != meta.MediaStorageSOPInstanceUID || gmeta.ImplementationClassUID != ImplementationClassUID || gmeta.SourceApplicationEntityTitle != "ODD" {
		t.Fatalf("round trip meta %+v", gmeta)
	}
	if _, _, err := ReadFileMeta(bytes.NewReader(ds)); !errors.Is(err, ErrNotPart10) {
		t.Fatalf("bare data set: %v, want ErrNotPart10", err)
	}
}

// slowReader yields 64000 zero bytes every 5 ms.
type slowReader struct{}

func (slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return copy(p, make([]byte, 64000)), nil
}
