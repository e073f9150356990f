package dimse

import (
	"bytes"
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/radflow/radflow/internal/dicom"
)

// StoreRequest is one received C-STORE, handed to StoreHandler.Store after
// its whole data set has been received: into DataSet (memory) when it is
// at most Config.MemoryDataSetLimit bytes, else into the file DataSetPath.
type StoreRequest struct {
	CallingAETitle string   // the peer's AE title (A-ASSOCIATE-RQ)
	CalledAETitle  string   // our AE title as the peer addressed it
	RemoteAddr     net.Addr // the peer's TCP address
	MessageID      uint16
	Priority       uint16 // 0 medium, 1 high, 2 low
	// SOPClassUID and SOPInstanceUID are the command's Affected SOP Class/Instance UID.
	SOPClassUID    string
	SOPInstanceUID string
	// TransferSyntaxUID is the transfer syntax of the presentation context
	// the data set arrived on; the data set bytes are encoded in it.
	TransferSyntaxUID string
	// MoveOriginatorAETitle is set when the store is a C-MOVE sub-operation.
	MoveOriginatorAETitle string
	// DataSetPath is a temporary file holding the data set bytes exactly as
	// received (no file meta, no preamble). It is removed after Store
	// returns, before the C-STORE-RSP is sent, unless the handler renamed
	// it away.
	// It is "" when the data set was received in memory (DataSet).
	DataSetPath string
	// DataSet holds the data set bytes exactly as received when they fit
	// Config.MemoryDataSetLimit (DataSetPath is "" then). The server reuses
	// the buffer after Store returns: the handler must not keep it.
	DataSet     []byte
	DataSetSize int64 // bytes in DataSet or DataSetPath
	// spooled is DataSet's whole buffer when the spool received it behind
	// part10Room bytes of room (spooled[part10Room:] is DataSet), so that
	// Part10Bytes can put the file meta in front of it without a copy.
	spooled []byte
	// PeerCertificate is the client certificate the TLS handshake verified
	// (Config.TLSConfig with client auth), nil otherwise; map it to an
	// identity by its subject CN / SANs (see package auth).
	PeerCertificate *x509.Certificate
	// Tap is what the handler's StartStore returned for this request (nil
	// when the handler is no StoreStarter or returned nil). It got every
	// byte of DataSet as it arrived, unless DataSetPath is set (the data
	// set outgrew memory and the tap stopped getting bytes part way).
	// Store owns it: it must Close it or finish what it started.
	Tap DataSetTap
}

// OpenDataSet opens the received data set bytes (DataSet or DataSetPath)
// for reading.
func (r *StoreRequest) OpenDataSet() (io.ReadCloser, error) {
	if r.DataSetPath == "" {
		return io.NopCloser(bytes.NewReader(r.DataSet)), nil
	}
	return os.Open(r.DataSetPath)
}

// Part10Bytes returns the received instance as a Part 10 file in memory
// (AppendPart10Header with FileMeta, then the data set), or ok=false when
// the data set is in DataSetPath. When the server received the data set
// behind enough reserved room (the usual case), the header is written
// into that room and the result shares DataSet's buffer: no copy of the
// data set (half a megabyte per CT slice). Like DataSet, the bytes are
// the server's again once Store returns. errors: AppendPart10Header's.
func (r *StoreRequest) Part10Bytes() (b []byte, ok bool, err error) {
	if r.DataSetPath != "" {
		return nil, false, nil
	}
	head, err := AppendPart10Header(make([]byte, 0, part10Room), r.FileMeta())
	if err != nil {
		return nil, true, err
	}
	if len(head) <= part10Room && len(r.DataSet) > 0 && len(r.spooled) == part10Room+len(r.DataSet) &&
		&r.spooled[part10Room] == &r.DataSet[0] {
		start := part10Room - len(head)
		copy(r.spooled[start:], head)
		return r.spooled[start:len(r.spooled):len(r.spooled)], true, nil
	}
	return append(head, r.DataSet...), true, nil
}

// FileMeta returns the Part 10 file meta for the received instance.
func (r *StoreRequest) FileMeta() FileMeta {
	return FileMeta{
		MediaStorageSOPClassUID:      r.SOPClassUID,
		MediaStorageSOPInstanceUID:   r.SOPInstanceUID,
		TransferSyntaxUID:            r.TransferSyntaxUID,
		SourceApplicationEntityTitle: r.CallingAETitle,
	}
}

// WritePart10File writes the received instance as a Part 10 file at path
// (atomic rename, fsynced); see WritePart10.
func (r *StoreRequest) WritePart10File(path string) error {
	f, err := r.OpenDataSet()
	if err != nil {
		return err
	}
	defer f.Close()
	return WritePart10File(path, r.FileMeta(), f)
}

// StoreHandler receives C-STORE requests. Store returns the DIMSE status to
// send (0x0000 success, or a warning such as 0xB000) when err is nil. A
// non-nil err sets the status instead: ErrOutOfResources → 0xA700,
// ErrDataSetMismatch → 0xA900, ErrCannotUnderstand → 0xC000,
// ErrNotAuthorized → 0x0124 Refused: Not authorized, anything
// else → 0x0110 Processing failure. Store may be called concurrently for
// different associations; ctx is cancelled when the association is aborted.
type StoreHandler interface {
	Store(ctx context.Context, req *StoreRequest) (status uint16, err error)
}

// StoreStarter is a StoreHandler that starts on a data set while it is
// still arriving (package service writes the instance's blob as its PDVs
// come in, so that little is left to do once the last one is in).
type StoreStarter interface {
	// StartStore is called once the C-STORE-RQ command has been accepted,
	// before its data set is read; req has every field but the data set's
	// (DataSet, DataSetPath, DataSetSize, Tap). It returns nil to receive
	// the data set the usual way, or a tap that gets the data set's bytes
	// as they arrive. Then either Store is called with req.Tap set, or,
	// when the association ends before the data set is complete or its
	// bytes cannot be held, the tap's Close.
	StartStore(ctx context.Context, req *StoreRequest) DataSetTap
}

// DataSetTap gets a C-STORE data set's bytes as they are received
// (StoreStarter).
type DataSetTap interface {
	// Data gets the next bytes of the data set, in order. p stays valid
	// and unchanged until Store has returned for the request or Close
	// has been called: it is part of the memory that holds the data set
	// (StoreRequest.DataSet), which is not reused before. It is not
	// called any more once the data set is moved to a temp file
	// (StoreRequest.DataSetPath is then set).
	Data(p []byte)
	// Close releases the tap when Store will not be called for it.
	Close()
}

// StoreHandlerFunc adapts a function to StoreHandler.
type StoreHandlerFunc func(ctx context.Context, req *StoreRequest) (uint16, error)

// Store calls f.
func (f StoreHandlerFunc) Store(ctx context.Context, req *StoreRequest) (uint16, error) {
	return f(ctx, req)
}

// Config configures a Server. Zero values take the defaults given.
type Config struct {
	// AETitle is our AE title (default "RADFLOW").
	AETitle string
	// CheckCalledAETitle rejects associations whose Called AE Title is not
	// AETitle (A-ASSOCIATE-RJ permanent, "called AE title not recognized").
	CheckCalledAETitle bool
	// AllowedCallingAETitles, when not empty, is the only calling AE titles
	// accepted; others get A-ASSOCIATE-RJ "calling AE title not recognized".
	AllowedCallingAETitles []string
	// MaxAssociations bounds concurrent established associations (default
	// 16); an A-ASSOCIATE-RQ beyond it gets A-ASSOCIATE-RJ rejected-transient,
	// service-provider (presentation), "local limit exceeded", and a warning
	// is logged. Connections that have not been accepted as associations
	// do not count (see MaxPendingConnections).
	MaxAssociations int
	// MaxPendingConnections bounds TCP connections that hold no
	// association: in the TLS handshake or waiting for their A-ASSOCIATE-RQ
	// (ARTIM, AssociationTimeout), being evaluated, or waiting for the peer
	// to close after a rejection or release (default 4×MaxAssociations, at
	// least 64). When it is reached a new connection closes the oldest one
	// that is only waiting, so idle sockets cannot lock SCUs out; if none
	// is, the new connection is closed. Either is logged (rate-limited).
	MaxPendingConnections int
	// MaxPDULength is the Maximum Length Received we advertise (default
	// 256 KiB, at least MinPDULength, at most HardMaxPDULength). Larger
	// incoming P-DATA-TF PDUs abort the association.
	MaxPDULength uint32
	// TransferSyntaxes are the accepted transfer syntaxes (default
	// DefaultTransferSyntaxes()). Of those the SCU proposes in a context,
	// the first it proposed is accepted, so compressed data sets are
	// received as sent; Explicit VR Big Endian (retired) only when the
	// context offers nothing else accepted.
	TransferSyntaxes []string
	// ExtraSOPClasses are accepted in addition to Verification and every
	// storage SOP class under StorageSOPClassPrefix.
	ExtraSOPClasses []string
	// AssociationTimeout is the ARTIM timeout (PS3.8 9.1.5): how long after
	// connect the TLS handshake and the whole A-ASSOCIATE-RQ must have
	// arrived (else the transport is closed), and how long to wait for the
	// peer to close after a release or rejection (default 10 s).
	AssociationTimeout time.Duration
	// IdleTimeout is how long an established association may stay without
	// receiving a PDU before it is aborted (default 5 min).
	IdleTimeout time.Duration
	// TempDir receives the data set temp files (default os.TempDir()).
	TempDir string
	// MemoryDataSetLimit: a data set of at most this many bytes is received
	// into memory (StoreRequest.DataSet, buffers reused across requests)
	// rather than a temp file; a larger one spills to a temp file in
	// TempDir as it arrives. 0 (default): always a temp file.
	MemoryDataSetLimit int64
	// Logger receives association events; never PHI (default slog.Default()).
	Logger *slog.Logger
	// TLSConfig, when set, makes every accepted connection DICOM TLS
	// (PS3.15 B.9): the handshake runs before the A-ASSOCIATE-RQ, within
	// the same AssociationTimeout from connect; a failed handshake closes the connection. With
	// ClientAuth RequireAndVerifyClientCert (mutual TLS) the verified
	// client certificate is passed on as StoreRequest.PeerCertificate.
	TLSConfig *tls.Config
	// CallingAETitlesByCalledAE restricts, per called AE title, the calling
	// AE titles accepted (A-ASSOCIATE-RJ "calling AE title not recognized"
	// otherwise); called AE titles not in the map are not restricted by it.
	CallingAETitlesByCalledAE map[string][]string
	// AcceptAssociation, when set, is asked about each association that
	// passed the other checks; an error rejects it (permanent,
	// ErrCalledAENotRecognized → reason 7, anything else → reason 3).
	AcceptAssociation func(AssociationInfo) error
}

func (c *Config) setDefaults() error {
	if c.AETitle == "" {
		c.AETitle = "RADFLOW"
	}
	if !dicom.ValidAETitle(c.AETitle) {
		return fmt.Errorf("%w: AE title %q", ErrInvalidArgument, c.AETitle)
	}
	if c.MaxAssociations <= 0 {
		c.MaxAssociations = 16
	}
	if c.MaxPendingConnections <= 0 {
		c.MaxPendingConnections = max(64, 4*c.MaxAssociations)
	}
	if c.MaxPDULength == 0 {
		c.MaxPDULength = 256 << 10
	}
	if c.MaxPDULength < MinPDULength || c.MaxPDULength > HardMaxPDULength {
		return fmt.Errorf("%w: MaxPDULength %d outside %d..%d", ErrInvalidArgument, c.MaxPDULength, MinPDULength, HardMaxPDULength)
	}
	if len(c.TransferSyntaxes) == 0 {
		c.TransferSyntaxes = DefaultTransferSyntaxes()
	}
	if c.AssociationTimeout <= 0 {
		c.AssociationTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Server is a DICOM Storage and Verification SCP.
type Server struct {
	cfg     Config
	handler StoreHandler
	ctx     context.Context // cancelled to abort every association
	cancel  context.CancelFunc

	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	pending    list.List // *connSlot of connections holding no association, oldest first
	active     int       // established associations, counted against MaxAssociations
	shed       int       // pending connections closed for the limit since shedLogged
	shedLogged time.Time
	shedTimer  *time.Timer   // pending report of shed connections
	shedEvery  time.Duration // shedLogEvery; tests shorten it
	closing    bool
	wg         sync.WaitGroup
}

// NewServer returns a Server for cfg that passes received instances to h.
// errors: ErrInvalidArgument for a bad AE title or PDU length, or a nil h.
func NewServer(cfg Config, h StoreHandler) (*Server, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil StoreHandler", ErrInvalidArgument)
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, handler: h, ctx: ctx, cancel: cancel, listeners: map[net.Listener]struct{}{}, shedEvery: shedLogEvery}, nil
}

// ListenAndServe listens on addr (e.g. ":11112") and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts associations on l until Shutdown; it always returns a
// non-nil error, ErrServerClosed after Shutdown. l is closed on return.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		// ARTIM starts at connect: the handshake and the A-ASSOCIATE-RQ
		// must both be in by then.
		artim := time.Now().Add(s.cfg.AssociationTimeout)
		s.mu.Lock()
		var e *connSlot
		if !s.closing {
			e = s.admitLocked(nc) // nil: the pending table is full of non-evictable peers
		}
		if e == nil {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.leave(e)
			s.serveConn(e, artim)
		}()
	}
}

// Shutdown stops accepting associations, waits for those in progress to
// end, and when ctx is done first aborts them (A-ABORT) and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	s.closeWaitingLocked() // no association on them: nothing to wait for
	if s.shedTimer != nil && s.shedTimer.Stop() {
		s.shedTimer = nil
		s.logShedLocked() // report the last evictions now
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// association is the acceptor side of one association.
type association struct {
	s      *Server
	c      *conn
	ctx    context.Context
	rq     *associateParams
	remote net.Addr
	log    *slog.Logger
	// peerCert is the verified TLS client certificate, if any.
	peerCert *x509.Certificate
	slot     *connSlot
}

// serveConn runs one accepted connection; artim is when the handshake and
// the A-ASSOCIATE-RQ must have arrived.
func (s *Server) serveConn(e *connSlot, artim time.Time) {
	nc, peerCert, ok := s.serverHandshake(e, artim)
	if !ok {
		return
	}
	c := newConn(nc)
	c.ourMax = s.cfg.MaxPDULength
	c.artim = s.cfg.AssociationTimeout
	c.readTimeout = s.cfg.IdleTimeout
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		c.abort(abortSourceUser, abortReasonNotSpecified, fmt.Errorf("%w: server shutting down", ErrAborted))
	})
	defer stop()
	defer c.close()
	a := &association{s: s, c: c, ctx: ctx, remote: nc.RemoteAddr(), log: s.cfg.Logger.With("remote", nc.RemoteAddr().String()), peerCert: peerCert, slot: e}

	// Sta2: transport open, ARTIM running until the A-ASSOCIATE-RQ arrives
	// (header and body: a trickled RQ is bounded too).
	c.state = sta2AwaitAssocRQ
	nc.SetReadDeadline(artim)
	typ, length, err := readPDUHeader(c.r)
	if err != nil {
		// ARTIM expiry, evicted, or closed transport: just close (AA-2, AA-5).
		a.log.Debug("dimse: no A-ASSOCIATE-RQ", "err", err)
		return
	}
	if typ != pduAssociateRQ {
		c.failProtocol(&protocolError{reason: abortReasonUnexpectedPDU, msg: fmt.Sprintf("PDU type %d before A-ASSOCIATE-RQ", typ)})
		a.log.Info("dimse: aborted", "reason", "PDU before A-ASSOCIATE-RQ", "type", typ)
		return
	}
	body, err := c.readSmallPDU(typ, length)
	if err == nil {
		a.rq, err = decodeAssociate(typ, body)
	}
	if err != nil {
		c.failProtocol(err)
		a.log.Info("dimse: aborted", "err", err)
		return
	}
	// Sta3: evaluate the request.
	c.state = sta3AwaitLocalResp
	if !s.claim(e) {
		return // evicted while the RQ arrived; the transport is closed
	}
	if rj := a.evaluate(); rj != nil {
		// Logged before the RJ goes out, so the log has it once the peer does.
		reason := rejectReasonText(rj[1], rj[2])
		if rj[1] == rjSourceProviderPres && rj[2] == rjReasonLocalLimitExceeded {
			a.log.Warn("dimse: association rejected: association limit reached", "calling_ae", a.rq.CallingAE, "called_ae", a.rq.CalledAE, "reason", reason, "max_associations", s.cfg.MaxAssociations)
		} else {
			a.log.Info("dimse: association rejected", "calling_ae", a.rq.CallingAE, "called_ae", a.rq.CalledAE, "reason", reason)
		}
		s.wait(e)
		c.write(encodeSimple(pduAssociateRJ, rj[0], rj[1], rj[2]))
		a.awaitClose()
		return
	}
	ac := a.negotiate()
	if err := c.write(encodeAssociate(pduAssociateAC, ac)); err != nil {
		return
	}
	c.state = sta6Established
	a.log.Info("dimse: association accepted", "calling_ae", a.rq.CallingAE, "contexts", len(c.ctxs), "peer_max_pdu", c.peerMax)
	a.serve()
}

// evaluate applies the association policies to the A-ASSOCIATE-RQ and
// returns the A-ASSOCIATE-RJ (result, source, reason), or nil when the
// association is accepted, in which case it has moved from s.pending to
// s.active.
func (a *association) evaluate() *[3]byte {
	cfg := &a.s.cfg
	rq := a.rq
	switch {
	case rq.ProtocolVersion&1 == 0:
		return &[3]byte{rjPermanent, rjSourceProviderACSE, rjReasonProtocolVersion}
	case rq.AppContext != ApplicationContextName:
		return &[3]byte{rjPermanent, rjSourceUser, rjReasonAppContextNotSupported}
	case cfg.CheckCalledAETitle && rq.CalledAE != cfg.AETitle:
		return &[3]byte{rjPermanent, rjSourceUser, rjReasonCalledAENotRecognized}
	}
	if len(cfg.AllowedCallingAETitles) > 0 {
		ok := false
		for _, ae := range cfg.AllowedCallingAETitles {
			ok = ok || strings.TrimSpace(ae) == rq.CallingAE
		}
		if !ok {
			return &[3]byte{rjPermanent, rjSourceUser, rjReasonCallingAENotRecognized}
		}
	}
	if rj := a.evaluatePeer(); rj != nil {
		return rj
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	if !a.s.tryAssociateLocked(a.slot) {
		return &[3]byte{rjTransient, rjSourceProviderPres, rjReasonLocalLimitExceeded}
	}
	return nil
}

// acceptsSOPClass reports whether uid is Verification, a storage SOP class or configured.
func (s *Server) acceptsSOPClass(uid string) bool {
	if uid == VerificationSOPClass || (strings.HasPrefix(uid, StorageSOPClassPrefix) && dicom.ValidReceivedUID(uid)) {
		return true
	}
	for _, x := range s.cfg.ExtraSOPClasses {
		if x == uid {
			return true
		}
	}
	return false
}

// negotiate answers each proposed presentation context and the user
// information, filling a.c.ctxs and a.c.peerMax, and returns the AC.
func (a *association) negotiate() *associateParams {
	rq := a.rq
	ac := &associateParams{
		CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, AppContext: ApplicationContextName,
		MaxLength: a.s.cfg.MaxPDULength, ImplClassUID: ImplementationClassUID, ImplVersion: ImplementationVersionName,
	}
	a.c.ctxs = map[byte]AcceptedContext{}
	for _, pc := range rq.Contexts {
		res := presentationContext{ID: pc.ID, Result: ResultAbstractSyntaxNotSupported}
		switch {
		case pc.ID%2 == 0:
			res.Result = ResultNoReason // context IDs must be odd (PS3.8 9.3.2.2)
		case a.c.ctxs[pc.ID].ID != 0:
			res.Result = ResultNoReason // duplicate ID
		case a.s.acceptsSOPClass(pc.AbstractSyntax):
			res.Result = ResultTransferSyntaxesNotSupported
			if ts := a.s.pickTransferSyntax(pc.TransferSyntaxes); ts != "" {
				res.Result = ResultAcceptance
				res.TransferSyntaxes = []string{ts}
				a.c.ctxs[pc.ID] = AcceptedContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntax: ts}
			}
		}
		ac.Contexts = append(ac.Contexts, res)
	}
	if rq.AsyncOps != nil {
		ac.AsyncOps = &[2]uint16{1, 1} // we perform operations one at a time
	}
	for _, r := range rq.Roles {
		// We are SCP for storage and verification: accept the requestor's
		// SCU role as proposed, never take the SCU role ourselves.
		ac.Roles = append(ac.Roles, roleSelection{SOPClassUID: r.SOPClassUID, SCU: r.SCU, SCP: false})
	}
	a.c.peerMax = rq.MaxLength
	if a.c.peerMax != 0 && a.c.peerMax < MinPDULength {
		a.c.peerMax = MinPDULength // a PDV must carry something; see the conformance statement
	}
	return ac
}

// pickTransferSyntax returns the transfer syntax to accept for a context
// proposing proposed (in the SCU's order of preference), or "" when we
// accept none of them: the first proposed that we accept, except that
// Explicit VR Big Endian (retired, PS3.5 Annex A.3) is taken only when
// the context offers nothing else we accept. dcmtk's storescu proposes
// each storage SOP class twice, once with Explicit VR Little Endian and
// once with Explicit VR Big Endian followed by Implicit VR Little Endian;
// accepting Big Endian there leaves it no context in an Implicit VR file's
// own transfer syntax, so it converted every such file to Explicit VR
// Little Endian before sending (Orthanc accepts Implicit VR there).
func (s *Server) pickTransferSyntax(proposed []string) string {
	bigEndian := false
	for _, p := range proposed {
		if !slices.Contains(s.cfg.TransferSyntaxes, p) {
			continue
		}
		if p != ExplicitVRBigEndian {
			return p
		}
		bigEndian = true
	}
	if bigEndian {
		return ExplicitVRBigEndian
	}
	return ""
}

// awaitClose is Sta13: after sending A-ASSOCIATE-RJ, A-RELEASE-RP or
// A-ABORT, wait up to the ARTIM timeout for the peer to close, then close.
func (a *association) awaitClose() {
	a.c.state = sta13AwaitClose
	a.c.nc.SetReadDeadline(time.Now().Add(a.c.artim))
	io.Copy(io.Discard, io.LimitReader(a.c.r, 1<<20))
	a.c.close()
}

// serve is Sta6: receive DIMSE requests until release, abort or error.
func (a *association) serve() {
	c := a.c
	for {
		ctxID, cmd, err := c.readCommand()
		switch {
		case errors.Is(err, errReleaseRequested):
			// The slot is freed before the RP goes out, so that an SCU
			// holding the RP can associate again at once.
			a.s.wait(a.slot)
			c.write(encodeSimple(pduReleaseRP, 0, 0, 0))
			a.log.Info("dimse: association released")
			a.awaitClose()
			return
		case err != nil:
			a.log.Info("dimse: association ended", "err", err)
			return
		}
		field, _ := cmd.us(tagCommandField)
		switch field {
		case cmdCEchoRQ:
			err = a.handleEcho(ctxID, cmd)
		case cmdCStoreRQ:
			err = a.handleStore(ctxID, cmd)
		default:
			err = a.handleUnknown(ctxID, cmd, field)
		}
		if err != nil {
			a.log.Info("dimse: association ended", "err", err)
			return
		}
	}
}

// response builds the common part of a response command.
func response(field uint16, rq command, status uint16) command {
	rsp := command{}
	rsp.setUS(tagCommandField, field)
	id, _ := rq.us(tagMessageID)
	rsp.setUS(tagMessageIDBeingRespondedTo, id)
	rsp.setUS(tagStatus, status)
	if v, ok := rq[tagAffectedSOPClassUID]; ok {
		rsp[tagAffectedSOPClassUID] = v
	}
	if v, ok := rq[tagAffectedSOPInstanceUID]; ok {
		rsp[tagAffectedSOPInstanceUID] = v
	}
	return rsp
}

func (a *association) handleEcho(ctxID byte, cmd command) error {
	if cmd.hasDataSet() {
		if _, _, err := a.c.readDataSet(ctxID, io.Discard); err != nil {
			return err
		}
	}
	return a.c.sendMessage(ctxID, response(cmdCEchoRSP, cmd, StatusSuccess), nil, 0)
}

func (a *association) handleUnknown(ctxID byte, cmd command, field uint16) error {
	if cmd.hasDataSet() {
		if _, _, err := a.c.readDataSet(ctxID, io.Discard); err != nil {
			return err
		}
	}
	a.log.Info("dimse: unsupported command", "command_field", fmt.Sprintf("0x%04X", field))
	return a.c.sendMessage(ctxID, response(field|0x8000, cmd, StatusUnrecognizedOperation), nil, 0)
}

// handleStore receives a C-STORE data set into a temp file, calls the
// handler and answers C-STORE-RSP. Only transport/protocol errors are returned.
func (a *association) handleStore(ctxID byte, cmd command) error {
	c := a.c
	pc := c.ctxs[ctxID]
	if !cmd.hasDataSet() {
		return c.failProtocol(errInvalid("C-STORE-RQ without a data set"))
	}
	req := &StoreRequest{
		CallingAETitle: a.rq.CallingAE, CalledAETitle: a.rq.CalledAE, RemoteAddr: a.remote,
		SOPClassUID: cmd.str(tagAffectedSOPClassUID), SOPInstanceUID: cmd.str(tagAffectedSOPInstanceUID),
		TransferSyntaxUID: pc.TransferSyntax, MoveOriginatorAETitle: cmd.str(tagMoveOriginatorAE),
		PeerCertificate: a.peerCert,
	}
	req.MessageID, _ = cmd.us(tagMessageID)
	req.Priority, _ = cmd.us(tagPriority)

	// Refusals decided from the command alone: the data set is drained
	// (never stored) so the association stays in step and usable.
	var status uint16
	var comment string
	var offending uint32
	switch {
	case req.SOPClassUID != pc.AbstractSyntax:
		status, comment, offending = StatusSOPClassNotSupported, "SOP class differs from the presentation context", tagAffectedSOPClassUID
	case !dicom.ValidReceivedUID(req.SOPInstanceUID):
		status, comment, offending = StatusCannotUnderstand, "invalid Affected SOP Instance UID", tagAffectedSOPInstanceUID
	}
	if status != StatusSuccess {
		if _, _, err := c.readDataSet(ctxID, io.Discard); err != nil {
			return err
		}
		a.log.Info("dimse: C-STORE refused", "status", fmt.Sprintf("0x%04X", status), "reason", comment)
		rsp := response(cmdCStoreRSP, cmd, status)
		rsp.setString(tagErrorComment, comment)
		rsp[tagOffendingElement] = []byte{0, 0, byte(offending), byte(offending >> 8)}
		return c.sendMessage(ctxID, rsp, nil, 0)
	}

	sp := &spool{dir: a.s.cfg.TempDir, limit: a.s.cfg.MemoryDataSetLimit}
	defer sp.release() // error paths; released explicitly before the response otherwise
	var ferr error
	var sink io.Writer = sp
	if sp.limit <= 0 {
		if ferr = sp.spill(); ferr != nil {
			sink = io.Discard
		}
	}
	if st, ok := a.s.handler.(StoreStarter); ok && ferr == nil && sp.f == nil {
		sp.tap = st.StartStore(a.ctx, req)
	}
	tap := sp.tap // the spool forgets it when it spills
	n, werr, err := c.readDataSet(ctxID, sink)
	if sp.f != nil {
		req.DataSetPath = sp.f.Name()
		if cerr := sp.f.Close(); werr == nil {
			werr = cerr
		}
	} else if ferr == nil {
		req.DataSet, req.spooled = sp.data(), sp.buf
	}
	if err != nil {
		if tap != nil {
			tap.Close()
		}
		return err // aborted mid-transfer: the temp file is removed, the handler never sees it
	}
	req.DataSetSize = n
	var herr error
	switch {
	case ferr != nil:
		herr = fmt.Errorf("%w: temp file: %v", ErrOutOfResources, ferr)
	case werr != nil:
		herr = fmt.Errorf("%w: writing temp file: %v", ErrOutOfResources, werr)
	default:
		req.Tap, tap = tap, nil
		status, herr = a.s.handler.Store(a.ctx, req)
	}
	if tap != nil {
		tap.Close()
	}
	// The temp file is removed (and the buffer recycled) before the
	// response is written: once the SCU has its C-STORE-RSP, nothing of
	// the data set is left behind.
	if rerr := sp.release(); rerr != nil {
		a.log.Warn("dimse: removing data set temp file", "err", rerr)
	}
	rsp := response(cmdCStoreRSP, cmd, status)
	if herr != nil {
		status = statusForError(herr)
		rsp.setUS(tagStatus, status)
		rsp.setString(tagErrorComment, errorComment(herr))
	}
	a.log.Info("dimse: C-STORE", "status", fmt.Sprintf("0x%04X", status), "bytes", n, "ts", pc.TransferSyntax)
	return c.sendMessage(ctxID, rsp, nil, 0)
}

// errorComment is the Error Comment for a handler error: the sentinel's
// text only, so that no PHI from a wrapped message leaves the process.
func errorComment(err error) string {
	for _, s := range []error{ErrOutOfResources, ErrDataSetMismatch, ErrCannotUnderstand, ErrNotAuthorized} {
		if errors.Is(err, s) {
			return strings.TrimPrefix(s.Error(), "dimse: ")
		}
	}
	return "processing failure"
}

// spoolBufs recycles the in-memory data set buffers (Config.MemoryDataSetLimit).
var spoolBufs sync.Pool

// part10Room is the room a spool buffer keeps in front of the data set
// for the Part 10 header (StoreRequest.Part10Bytes): 128-byte preamble,
// "DICM" and a file meta group of a few UIDs take about 350 bytes.
const part10Room = 1024

// spool receives one data set: into buf (after part10Room bytes of room)
// while it fits limit, then into a temp file in dir (holding everything
// received so far).
type spool struct {
	dir   string
	limit int64
	buf   []byte // part10Room bytes of room, then the data set
	f     *os.File
	tap   DataSetTap // gets the bytes kept in memory; nil once spilled
}

// data returns the data set bytes held in memory.
func (s *spool) data() []byte {
	if len(s.buf) < part10Room {
		return nil
	}
	return s.buf[part10Room:]
}

// fits reports whether n more bytes stay in memory; it takes a pooled
// buffer (with part10Room in front) for the first bytes.
func (s *spool) fits(n int64) bool {
	if s.f != nil || int64(len(s.data()))+n > s.limit {
		return false
	}
	if s.buf == nil {
		if b, ok := spoolBufs.Get().(*[]byte); ok && cap(*b) >= part10Room {
			s.buf = (*b)[:part10Room]
		} else {
			s.buf = make([]byte, part10Room, part10Room+int(n))
		}
	}
	return true
}

func (s *spool) Write(p []byte) (int, error) {
	if s.fits(int64(len(p))) {
		s.buf = append(s.buf, p...)
		if s.tap != nil {
			s.tap.Data(s.buf[len(s.buf)-len(p):])
		}
		return len(p), nil
	}
	if s.f == nil {
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	return s.f.Write(p)
}

// ReadFrom implements io.ReaderFrom for io.CopyN from the connection (one
// call per PDV): a PDV that stays in memory is read straight into the
// buffer, with no intermediate 32 KiB buffer allocated per call (which
// had been about 0.5 MB of garbage and an extra copy per 0.5 MB data set).
// Anything else goes through Write.
func (s *spool) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok || lr.N <= 0 || lr.N > math.MaxInt32 || !s.fits(lr.N) {
		return io.Copy(struct{ io.Writer }{s}, r)
	}
	// Grow by what arrives, a step at a time, never by the announced
	// length alone (a peer could announce a PDV and stall).
	var total int64
	for lr.N > 0 {
		step := int(min(lr.N, readFromStep))
		start := len(s.buf)
		s.buf = slices.Grow(s.buf, step)[:start+step]
		n, err := io.ReadFull(lr, s.buf[start:])
		s.buf = s.buf[:start+n]
		total += int64(n)
		if s.tap != nil && n > 0 {
			s.tap.Data(s.buf[start:])
		}
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return total, nil // io.Copy's convention: a short source is not an error
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// readFromStep bounds how far ReadFrom grows the buffer ahead of the
// bytes received.
const readFromStep = 64 << 10

// spill moves to a temp file, writing what buf holds.
func (s *spool) spill() error {
	f, err := os.CreateTemp(s.dir, "radflow-dimse-*.ds")
	if err != nil {
		return err
	}
	s.f = f
	tapped := s.tap != nil
	s.tap = nil // the handler falls back to DataSetPath
	if d := s.data(); len(d) > 0 {
		if _, err := f.Write(d); err != nil {
			return err
		}
	}
	if tapped {
		// The tap may still read the bytes it was given (DataSetTap.Data)
		// until Store or Close: the buffer is left to the garbage collector
		// rather than reused.
		s.buf = nil
		return nil
	}
	s.recycle()
	return nil
}

func (s *spool) recycle() {
	if s.buf != nil && cap(s.buf) <= 64<<20 {
		b := s.buf[:0]
		spoolBufs.Put(&b)
	}
	s.buf = nil
}

// release closes and removes the temp file, if any, and recycles the
// buffer. It may be called more than once. A temp file the handler renamed
// away (already gone) is not an error.
func (s *spool) release() error {
	var err error
	if s.f != nil {
		s.f.Close()
		if rerr := os.Remove(s.f.Name()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
		s.f = nil
	}
	s.recycle()
	return err
}
