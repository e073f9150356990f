package dimse

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// state is an association state of the PS3.8 9.2 state machine. Only the
// states a radflow endpoint can be in are named.
type state int

const (
	sta1Idle           state = 1  // no association, no transport
	sta2AwaitAssocRQ   state = 2  // acceptor: transport open, ARTIM running
	sta3AwaitLocalResp state = 3  // acceptor: evaluating the A-ASSOCIATE-RQ
	sta5AwaitAssocACRJ state = 5  // requestor: A-ASSOCIATE-RQ sent
	sta6Established    state = 6  // data transfer
	sta7AwaitReleaseRP state = 7  // requestor: A-RELEASE-RQ sent
	sta13AwaitClose    state = 13 // RP/RJ/ABORT sent, ARTIM running until the peer closes
)

// AcceptedContext is a presentation context accepted for an association.
type AcceptedContext struct {
	ID             byte
	AbstractSyntax string
	TransferSyntax string
}

// errReleaseRequested is returned by the PDV reader when an A-RELEASE-RQ arrives.
var errReleaseRequested = errors.New("dimse: release requested")

// conn is one association's transport with the PDU and PDV layer on top.
// Reads happen on one goroutine; writes are serialised by wmu so that an
// abort can be sent from another goroutine (context cancellation).
type conn struct {
	nc      net.Conn
	r       *bufio.Reader
	wmu     sync.Mutex
	wbuf    []byte
	state   state
	ourMax  uint32 // advertised Maximum Length Received (0 = we said unlimited)
	peerMax uint32 // peer's Maximum Length Received (0 = unlimited)
	ctxs    map[byte]AcceptedContext

	readTimeout time.Duration // idle / response timeout for each PDU
	artim       time.Duration

	pduLeft uint32 // unread bytes of the current P-DATA-TF PDU

	closeOnce sync.Once
	aborted   error // set when we aborted (cause), guarded by wmu
}

// connReadBuffer is the size of a connection's read buffer: PDU and PDV
// headers and commands are read through it, while a data set's PDV
// payload of at least this size is read straight into the receiver's
// buffer (bufio reads a large request directly), so only what the last
// fill took past its headers is copied (64 KiB had copied up to a
// quarter of each 256 KiB PDU: 1.9 % of radflow's CPU over four C-STORE
// associations).
const connReadBuffer = 8 << 10

func newConn(nc net.Conn) *conn {
	return &conn{nc: nc, r: bufio.NewReaderSize(nc, connReadBuffer), state: sta1Idle}
}

// sendChunk returns how many data bytes fit in one PDV sent to the peer.
func (c *conn) sendChunk() int {
	max := c.peerMax
	if max == 0 || max > 1<<20 {
		max = 1 << 20
	}
	return int(max) - pdvHeaderLen
}

// write sends one complete PDU.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.aborted != nil {
		return c.aborted
	}
	if c.readTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.readTimeout))
	}
	_, err := c.nc.Write(b)
	return err
}

// abort sends an A-ABORT (best effort, bounded by a short write deadline)
// and closes the transport. cause becomes the error of later operations.
func (c *conn) abort(source, reason byte, cause error) {
	c.wmu.Lock()
	if c.aborted == nil {
		c.aborted = cause
		c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.nc.Write(encodeSimple(pduAbort, 0, source, reason))
	}
	c.wmu.Unlock()
	c.close()
}

func (c *conn) close() {
	c.closeOnce.Do(func() { c.nc.Close() })
}

// abortedErr returns the cause recorded by abort, or nil.
func (c *conn) abortedErr() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.aborted
}

// failProtocol aborts the association for a protocol error and returns err.
func (c *conn) failProtocol(err error) error {
	reason := byte(abortReasonNotSpecified)
	var pe *protocolError
	if errors.As(err, &pe) {
		reason = pe.reason
	}
	c.abort(abortSourceProvider, reason, err)
	return err
}

// readErr converts a transport error into the error callers see: the cause
// recorded by abort wins over the "use of closed connection" it produced.
func (c *conn) readErr(err error) error {
	if a := c.abortedErr(); a != nil {
		return a
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.abort(abortSourceProvider, abortReasonNotSpecified, fmt.Errorf("%w: timeout waiting for the peer", ErrAborted))
		return c.abortedErr()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		c.close()
		return fmt.Errorf("%w: connection closed by peer", ErrAborted)
	}
	c.close()
	return fmt.Errorf("%w: %v", ErrAborted, err)
}

// readSmallPDU reads the body of a non-P-DATA PDU whose header has been read,
// enforcing the fixed lengths and the association PDU cap.
func (c *conn) readSmallPDU(typ byte, length uint32) ([]byte, error) {
	switch typ {
	case pduAssociateRQ, pduAssociateAC:
		if length > maxAssocPDULen || length < 68 {
			return nil, errInvalid("A-ASSOCIATE PDU length %d outside 68..%d", length, maxAssocPDULen)
		}
	case pduAssociateRJ, pduReleaseRQ, pduReleaseRP, pduAbort:
		if length != 4 {
			return nil, errInvalid("PDU type %d with length %d, want 4", typ, length)
		}
	default:
		return nil, &protocolError{reason: abortReasonUnrecognizedPDU, msg: fmt.Sprintf("unrecognized PDU type 0x%02x", typ)}
	}
	b := make([]byte, length)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, c.readErr(err)
	}
	return b, nil
}

// nextPDV returns the context ID, message control header and data length of
// the next PDV, reading a new P-DATA-TF PDU when the current one is used up.
// The caller must then consume exactly n bytes from c.r. An A-RELEASE-RQ
// yields errReleaseRequested, an A-ABORT an *AbortError; any other PDU or a
// malformed length aborts the association.
func (c *conn) nextPDV() (ctxID, mch byte, n uint32, err error) {
	if c.pduLeft == 0 {
		if c.readTimeout > 0 {
			c.nc.SetReadDeadline(time.Now().Add(c.readTimeout))
		}
		typ, length, err := readPDUHeader(c.r)
		if err != nil {
			return 0, 0, 0, c.readErr(err)
		}
		if typ != pduPDataTF {
			body, err := c.readSmallPDU(typ, length)
			if err != nil {
				return 0, 0, 0, c.failProtocol(err)
			}
			switch typ {
			case pduAbort:
				c.close()
				return 0, 0, 0, &AbortError{Source: body[2], Reason: body[3]}
			case pduReleaseRQ:
				return 0, 0, 0, errReleaseRequested
			}
			return 0, 0, 0, c.failProtocol(&protocolError{reason: abortReasonUnexpectedPDU, msg: fmt.Sprintf("unexpected PDU type %d in state %d", typ, c.state)})
		}
		limit := c.ourMax
		if limit == 0 || limit > HardMaxPDULength {
			limit = HardMaxPDULength
		}
		if length > limit {
			return 0, 0, 0, c.failProtocol(errInvalid("P-DATA-TF length %d exceeds the %d we advertised", length, limit))
		}
		if length < pdvHeaderLen {
			return 0, 0, 0, c.failProtocol(errInvalid("P-DATA-TF length %d holds no PDV", length))
		}
		c.pduLeft = length
	}
	if c.pduLeft < pdvHeaderLen {
		return 0, 0, 0, c.failProtocol(errInvalid("%d trailing bytes in P-DATA-TF cannot hold a PDV", c.pduLeft))
	}
	var h [pdvHeaderLen]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, 0, 0, c.readErr(err)
	}
	itemLen := binary.BigEndian.Uint32(h[:])
	if itemLen < 2 || itemLen > c.pduLeft-4 {
		return 0, 0, 0, c.failProtocol(errInvalid("PDV item length %d outside 2..%d", itemLen, c.pduLeft-4))
	}
	c.pduLeft -= 4 + itemLen
	return h[4], h[5], itemLen - 2, nil
}

// readCommand reads PDVs until a complete command set has arrived on one
// accepted presentation context.
func (c *conn) readCommand() (byte, command, error) {
	var buf []byte
	var ctxID byte
	first := true
	for {
		id, mch, n, err := c.nextPDV()
		if err != nil {
			return 0, nil, err
		}
		if mch&1 == 0 {
			return 0, nil, c.failProtocol(&protocolError{reason: abortReasonUnexpectedPDU, msg: "data PDV where a command was expected"})
		}
		if first {
			if _, ok := c.ctxs[id]; !ok {
				return 0, nil, c.failProtocol(errInvalid("PDV on presentation context %d that was not accepted", id))
			}
			ctxID, first = id, false
		} else if id != ctxID {
			return 0, nil, c.failProtocol(errInvalid("command fragments on contexts %d and %d", ctxID, id))
		}
		if len(buf)+int(n) > maxCommandLen {
			return 0, nil, c.failProtocol(errInvalid("command set longer than %d bytes", maxCommandLen))
		}
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(c.r, buf[start:]); err != nil {
			return 0, nil, c.readErr(err)
		}
		if mch&2 != 0 {
			break
		}
	}
	cmd, err := decodeCommand(buf)
	if err != nil {
		return 0, nil, c.failProtocol(err)
	}
	return ctxID, cmd, nil
}

// readDataSet streams the data set PDVs of the current message on ctxID to
// w and returns the number of bytes. A write error to w does not stop the
// reading (the association stays in step); it is returned as writeErr.
func (c *conn) readDataSet(ctxID byte, w io.Writer) (n int64, writeErr, err error) {
	for {
		id, mch, length, err := c.nextPDV()
		if err != nil {
			return n, writeErr, err
		}
		if mch&1 != 0 {
			return n, writeErr, c.failProtocol(&protocolError{reason: abortReasonUnexpectedPDU, msg: "command PDV inside a data set"})
		}
		if id != ctxID {
			return n, writeErr, c.failProtocol(errInvalid("data set fragment on context %d, command on %d", id, ctxID))
		}
		if writeErr == nil {
			var m int64
			m, writeErr = io.CopyN(w, c.r, int64(length))
			n += m
			length -= uint32(m)
		}
		if length > 0 { // discard what the writer did not take
			if _, err := c.r.Discard(int(length)); err != nil {
				return n, writeErr, c.readErr(err)
			}
		}
		if mch&2 != 0 {
			return n, writeErr, nil
		}
	}
}

// writePDVs sends data as PDVs on ctxID, each in its own P-DATA-TF PDU sized
// to the peer's maximum. size is the number of bytes r will yield; when it is
// odd a zero byte is appended so the data set has even length (PS3.5 7.1).
func (c *conn) writePDVs(ctxID byte, isCommand bool, r io.Reader, size int64) error {
	chunk := c.sendChunk()
	if c.wbuf == nil || len(c.wbuf) < pduHeaderLen+pdvHeaderLen+chunk {
		c.wbuf = make([]byte, pduHeaderLen+pdvHeaderLen+chunk)
	}
	padded := size
	if !isCommand && size%2 == 1 {
		padded++
	}
	var sent int64
	for {
		n := int64(chunk)
		if padded-sent < n {
			n = padded - sent
		}
		b := c.wbuf[:pduHeaderLen+pdvHeaderLen+int(n)]
		data := b[pduHeaderLen+pdvHeaderLen:]
		fromReader := n
		if sent+n > size {
			fromReader = size - sent
			data[n-1] = 0 // the padding byte
		}
		if _, err := io.ReadFull(r, data[:fromReader]); err != nil {
			return fmt.Errorf("dimse: reading data set to send: %w", err)
		}
		sent += n
		putPDUHeader(b, pduPDataTF, pdvHeaderLen+int(n))
		binary.BigEndian.PutUint32(b[6:], uint32(n)+2)
		b[10] = ctxID
		mch := byte(0)
		if isCommand {
			mch |= 1
		}
		if sent == padded {
			mch |= 2
		}
		b[11] = mch
		if err := c.write(b); err != nil {
			if a := c.abortedErr(); a != nil {
				return a
			}
			c.close()
			return fmt.Errorf("%w: %v", ErrAborted, err)
		}
		if sent == padded {
			return nil
		}
	}
}

// sendMessage sends a command set and, if ds is not nil, its data set.
func (c *conn) sendMessage(ctxID byte, cmd command, ds io.Reader, size int64) error {
	if ds == nil {
		cmd.setUS(tagCommandDataSetType, dataSetTypeNone)
	} else {
		cmd.setUS(tagCommandDataSetType, 0x0000)
	}
	enc := cmd.encode()
	if err := c.writePDVs(ctxID, true, bytesReader(enc), int64(len(enc))); err != nil {
		return err
	}
	if ds == nil {
		return nil
	}
	return c.writePDVs(ctxID, false, ds, size)
}
