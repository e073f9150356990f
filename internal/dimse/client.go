package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/radflow/radflow/internal/dicom"
)

// PresentationContext is an abstract syntax (SOP class) proposed with its
// transfer syntaxes, in order of preference.
type PresentationContext struct {
	AbstractSyntax   string
	TransferSyntaxes []string
}

// ClientConfig configures an SCU association. Zero values take the defaults given.
type ClientConfig struct {
	CallingAETitle string // our AE title (default "RADFLOW")
	CalledAETitle  string // the peer's AE title (default "ANY-SCP")
	// MaxPDULength is the Maximum Length Received we advertise (default 256 KiB).
	MaxPDULength uint32
	// AssociationTimeout bounds connect + A-ASSOCIATE and A-RELEASE (ARTIM, default 30 s).
	AssociationTimeout time.Duration
	// ResponseTimeout bounds the wait for each PDU of a DIMSE response (default 5 min).
	ResponseTimeout time.Duration
	// TLSConfig, when set, runs DICOM TLS: the handshake follows the TCP
	// connect, within AssociationTimeout. Without ServerName the host of
	// addr is verified; set Certificates for mutual TLS.
	TLSConfig *tls.Config
}

// Client is the requestor side of one association (an SCU). Its methods
// are safe for concurrent use; operations are performed one at a time
// (asynchronous operations window 1).
type Client struct {
	c        *conn
	cfg      ClientConfig
	accepted []AcceptedContext
	mu       sync.Mutex
	msgID    uint16
	done     bool
}

// Dial connects to addr (host:port), proposes contexts (at most 128; IDs
// 1, 3, 5, ... in order) and returns the established association.
// errors: ErrInvalidArgument, *RejectError (ErrAssociationRejected),
// *AbortError / ErrAborted, ErrProtocol, or the dial error.
func Dial(ctx context.Context, addr string, cfg ClientConfig, contexts []PresentationContext) (*Client, error) {
	if cfg.CallingAETitle == "" {
		cfg.CallingAETitle = "RADFLOW"
	}
	if cfg.CalledAETitle == "" {
		cfg.CalledAETitle = "ANY-SCP"
	}
	if !dicom.ValidAETitle(cfg.CallingAETitle) || !dicom.ValidAETitle(cfg.CalledAETitle) {
		return nil, fmt.Errorf("%w: AE titles %q, %q", ErrInvalidArgument, cfg.CallingAETitle, cfg.CalledAETitle)
	}
	if cfg.MaxPDULength == 0 {
		cfg.MaxPDULength = 256 << 10
	}
	if cfg.MaxPDULength < MinPDULength || cfg.MaxPDULength > HardMaxPDULength {
		return nil, fmt.Errorf("%w: MaxPDULength %d", ErrInvalidArgument, cfg.MaxPDULength)
	}
	if cfg.AssociationTimeout <= 0 {
		cfg.AssociationTimeout = 30 * time.Second
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = 5 * time.Minute
	}
	if len(contexts) == 0 || len(contexts) > 128 {
		return nil, fmt.Errorf("%w: %d presentation contexts (want 1..128)", ErrInvalidArgument, len(contexts))
	}
	rq := &associateParams{
		CalledAE: cfg.CalledAETitle, CallingAE: cfg.CallingAETitle, AppContext: ApplicationContextName,
		MaxLength: cfg.MaxPDULength, ImplClassUID: ImplementationClassUID, ImplVersion: ImplementationVersionName,
	}
	for i, pc := range contexts {
		if !dicom.ValidReceivedUID(pc.AbstractSyntax) || len(pc.TransferSyntaxes) == 0 {
			return nil, fmt.Errorf("%w: presentation context %d (%q with %d transfer syntaxes)", ErrInvalidArgument, i, pc.AbstractSyntax, len(pc.TransferSyntaxes))
		}
		rq.Contexts = append(rq.Contexts, presentationContext{ID: byte(2*i + 1), AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
	}

	dctx, cancel := context.WithTimeout(ctx, cfg.AssociationTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if cfg.TLSConfig != nil {
		if nc, err = clientHandshake(dctx, nc, cfg.TLSConfig, addr); err != nil {
			return nil, err
		}
	}
	c := newConn(nc)
	c.ourMax = cfg.MaxPDULength
	c.artim = cfg.AssociationTimeout
	c.readTimeout = cfg.ResponseTimeout
	stop := context.AfterFunc(dctx, func() {
		c.abort(abortSourceUser, abortReasonNotSpecified, fmt.Errorf("%w: association setup: %v", ErrAborted, context.Cause(dctx)))
	})
	defer stop()

	if err := c.write(encodeAssociate(pduAssociateRQ, rq)); err != nil {
		c.close()
		return nil, c.readErr(err)
	}
	c.state = sta5AwaitAssocACRJ
	nc.SetReadDeadline(time.Now().Add(cfg.AssociationTimeout))
	typ, length, err := readPDUHeader(c.r)
	if err != nil {
		return nil, c.readErr(err)
	}
	body, err := c.readSmallPDU(typ, length)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			return nil, c.failProtocol(err)
		}
		return nil, err
	}
	switch typ {
	case pduAssociateRJ:
		c.close()
		return nil, &RejectError{Result: body[1], Source: body[2], Reason: body[3]}
	case pduAbort:
		c.close()
		return nil, &AbortError{Source: body[2], Reason: body[3]}
	case pduAssociateAC:
	default:
		return nil, c.failProtocol(&protocolError{reason: abortReasonUnexpectedPDU, msg: fmt.Sprintf("PDU type %d in answer to A-ASSOCIATE-RQ", typ)})
	}
	ac, err := decodeAssociate(typ, body)
	if err != nil {
		return nil, c.failProtocol(err)
	}
	cl := &Client{c: c, cfg: cfg}
	c.ctxs = map[byte]AcceptedContext{}
	for _, pc := range ac.Contexts {
		if pc.Result != ResultAcceptance || pc.ID%2 == 0 || int(pc.ID) > 2*len(contexts) || len(pc.TransferSyntaxes) != 1 {
			continue
		}
		prop := contexts[pc.ID/2]
		ts := pc.TransferSyntaxes[0]
		if !contains(prop.TransferSyntaxes, ts) {
			return nil, c.failProtocol(errInvalid("context %d accepted with transfer syntax %s that was not proposed", pc.ID, ts))
		}
		acc := AcceptedContext{ID: pc.ID, AbstractSyntax: prop.AbstractSyntax, TransferSyntax: ts}
		c.ctxs[pc.ID] = acc
		cl.accepted = append(cl.accepted, acc)
	}
	sort.Slice(cl.accepted, func(i, j int) bool { return cl.accepted[i].ID < cl.accepted[j].ID })
	c.peerMax = ac.MaxLength
	if c.peerMax != 0 && c.peerMax < MinPDULength {
		return nil, c.failProtocol(errInvalid("peer maximum PDU length %d below %d", c.peerMax, MinPDULength))
	}
	c.state = sta6Established
	return cl, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Accepted returns the presentation contexts the peer accepted.
func (cl *Client) Accepted() []AcceptedContext { return append([]AcceptedContext(nil), cl.accepted...) }

// PeerMaxPDULength is the peer's Maximum Length Received (0 = unlimited).
func (cl *Client) PeerMaxPDULength() uint32 { return cl.c.peerMax }

// findContext returns the accepted context for sopClass and ts.
func (cl *Client) findContext(sopClass, ts string) (AcceptedContext, error) {
	var others []string
	for _, a := range cl.accepted {
		if a.AbstractSyntax == sopClass {
			if a.TransferSyntax == ts {
				return a, nil
			}
			others = append(others, a.TransferSyntax)
		}
	}
	if len(others) > 0 {
		return AcceptedContext{}, fmt.Errorf("%w: SOP class %s accepted only with transfer syntax %v, data set is %s (no transcoding)", ErrNoPresentationContext, sopClass, others, ts)
	}
	return AcceptedContext{}, fmt.Errorf("%w: SOP class %s not accepted by the peer", ErrNoPresentationContext, sopClass)
}

// roundTrip sends a request and waits for the response with the expected
// command field; a response data set is discarded. ctx cancellation aborts
// the association.
func (cl *Client) roundTrip(ctx context.Context, pc AcceptedContext, rq command, ds io.Reader, size int64, rspField uint16) (command, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.done {
		return nil, ErrReleased
	}
	if err := cl.c.abortedErr(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() {
		cl.c.abort(abortSourceUser, abortReasonNotSpecified, fmt.Errorf("%w: %v", ErrAborted, context.Cause(ctx)))
	})
	defer stop()
	cl.msgID++
	id := cl.msgID
	rq.setUS(tagMessageID, id)
	if err := cl.c.sendMessage(pc.ID, rq, ds, size); err != nil {
		return nil, err
	}
	ctxID, rsp, err := cl.c.readCommand()
	if errors.Is(err, errReleaseRequested) {
		return nil, cl.c.failProtocol(&protocolError{reason: abortReasonUnexpectedPDU, msg: "A-RELEASE-RQ from the acceptor"})
	}
	if err != nil {
		return nil, err
	}
	if rsp.hasDataSet() {
		if _, _, err := cl.c.readDataSet(ctxID, io.Discard); err != nil {
			return nil, err
		}
	}
	field, _ := rsp.us(tagCommandField)
	got, _ := rsp.us(tagMessageIDBeingRespondedTo)
	if field != rspField || got != id {
		return nil, cl.c.failProtocol(errInvalid("response 0x%04X to message %d, want 0x%04X to %d", field, got, rspField, id))
	}
	if _, ok := rsp.us(tagStatus); !ok {
		return nil, cl.c.failProtocol(errInvalid("response without a Status"))
	}
	return rsp, nil
}

// Echo sends a C-ECHO-RQ on an accepted Verification context.
// errors: ErrNoPresentationContext, *StatusError for a non-success status,
// ErrAborted, ErrProtocol.
func (cl *Client) Echo(ctx context.Context) error {
	var pc AcceptedContext
	found := false
	for _, a := range cl.accepted {
		if a.AbstractSyntax == VerificationSOPClass {
			pc, found = a, true
			break
		}
	}
	if !found {
		return fmt.Errorf("%w: Verification not accepted", ErrNoPresentationContext)
	}
	rq := command{}
	rq.setUS(tagCommandField, cmdCEchoRQ)
	rq.setUI(tagAffectedSOPClassUID, VerificationSOPClass)
	rsp, err := cl.roundTrip(ctx, pc, rq, nil, 0, cmdCEchoRSP)
	if err != nil {
		return err
	}
	if st, _ := rsp.us(tagStatus); st != StatusSuccess {
		return &StatusError{Status: st}
	}
	return nil
}

// Store sends one C-STORE-RQ with size bytes of data set from ds, encoded
// in transferSyntax, on the accepted context for sopClass+transferSyntax.
// An odd size is padded with one zero byte. It returns the peer's status
// (0x0000 success, 0xBxxx warning, others failure); err is non-nil only
// when no status was received: ErrNoPresentationContext, ErrInvalidArgument,
// ErrAborted, ErrProtocol.
func (cl *Client) Store(ctx context.Context, sopClass, sopInstance, transferSyntax string, ds io.Reader, size int64) (uint16, error) {
	if !dicom.ValidReceivedUID(sopInstance) {
		return 0, fmt.Errorf("%w: SOP Instance UID %q", ErrInvalidArgument, sopInstance)
	}
	if size < 0 || size > 1<<32-2 {
		return 0, fmt.Errorf("%w: data set size %d", ErrInvalidArgument, size)
	}
	pc, err := cl.findContext(sopClass, transferSyntax)
	if err != nil {
		return 0, err
	}
	rq := command{}
	rq.setUS(tagCommandField, cmdCStoreRQ)
	rq.setUI(tagAffectedSOPClassUID, sopClass)
	rq.setUI(tagAffectedSOPInstanceUID, sopInstance)
	rq.setUS(tagPriority, 0)
	rsp, err := cl.roundTrip(ctx, pc, rq, ds, size, cmdCStoreRSP)
	if err != nil {
		return 0, err
	}
	st, _ := rsp.us(tagStatus)
	return st, nil
}

// StoreFile sends the data set of the Part 10 file at path with the SOP
// class, SOP instance and transfer syntax of its file meta; see Store.
// errors additionally: ErrNotPart10, file errors.
func (cl *Client) StoreFile(ctx context.Context, path string) (uint16, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	meta, off, err := ReadFileMeta(f)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	ds := io.NewSectionReader(f, off, fi.Size()-off)
	return cl.Store(ctx, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID, ds, ds.Size())
}

// StorageContexts returns one presentation context per distinct (SOP class,
// transfer syntax) of the Part 10 files, each proposing only the file's
// transfer syntax, plus Verification. errors: ErrNotPart10, file errors,
// ErrInvalidArgument when more than 128 contexts would be needed.
func StorageContexts(paths []string) ([]PresentationContext, error) {
	out := []PresentationContext{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}}}
	seen := map[[2]string]bool{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		meta, _, err := ReadFileMeta(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		k := [2]string{meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID}
		if !seen[k] {
			seen[k] = true
			out = append(out, PresentationContext{AbstractSyntax: k[0], TransferSyntaxes: []string{k[1]}})
		}
	}
	if len(out) > 128 {
		return nil, fmt.Errorf("%w: %d presentation contexts needed, at most 128", ErrInvalidArgument, len(out))
	}
	return out, nil
}

// Release performs an orderly A-RELEASE and closes the connection.
// errors: ErrAborted / *AbortError if the peer aborted or timed out.
func (cl *Client) Release(ctx context.Context) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.done {
		return ErrReleased
	}
	cl.done = true
	c := cl.c
	defer c.close()
	if err := c.abortedErr(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		c.abort(abortSourceUser, abortReasonNotSpecified, fmt.Errorf("%w: %v", ErrAborted, context.Cause(ctx)))
	})
	defer stop()
	if err := c.write(encodeSimple(pduReleaseRQ, 0, 0, 0)); err != nil {
		return c.readErr(err)
	}
	c.state = sta7AwaitReleaseRP
	deadline := time.Now().Add(c.artim)
	for {
		c.nc.SetReadDeadline(deadline)
		typ, length, err := readPDUHeader(c.r)
		if err != nil {
			return c.readErr(err)
		}
		if typ == pduPDataTF { // late P-DATA in Sta7 is discarded
			if length > HardMaxPDULength {
				return c.failProtocol(errInvalid("P-DATA-TF length %d", length))
			}
			if _, err := c.r.Discard(int(length)); err != nil {
				return c.readErr(err)
			}
			continue
		}
		body, err := c.readSmallPDU(typ, length)
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				return c.failProtocol(err)
			}
			return err
		}
		switch typ {
		case pduReleaseRP:
			c.state = sta1Idle
			return nil
		case pduReleaseRQ: // release collision (PS3.8 9.2.3): the requestor answers and keeps waiting
			if err := c.write(encodeSimple(pduReleaseRP, 0, 0, 0)); err != nil {
				return c.readErr(err)
			}
		case pduAbort:
			return &AbortError{Source: body[2], Reason: body[3]}
		default:
			return c.failProtocol(&protocolError{reason: abortReasonUnexpectedPDU, msg: fmt.Sprintf("PDU type %d while awaiting A-RELEASE-RP", typ)})
		}
	}
}

// Abort sends A-ABORT and closes the connection.
func (cl *Client) Abort() {
	cl.c.abort(abortSourceUser, abortReasonNotSpecified, fmt.Errorf("%w: aborted locally", ErrAborted))
	cl.mu.Lock()
	cl.done = true
	cl.mu.Unlock()
}
