package dimse

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 9.3.1).
const (
	pduAssociateRQ byte = 0x01
	pduAssociateAC byte = 0x02
	pduAssociateRJ byte = 0x03
	pduPDataTF     byte = 0x04
	pduReleaseRQ   byte = 0x05
	pduReleaseRP   byte = 0x06
	pduAbort       byte = 0x07
)

// Item types inside A-ASSOCIATE-RQ/AC (PS3.8 9.3.2, 9.3.3, PS3.7 Annex D).
const (
	itemAppContext     byte = 0x10
	itemPresContextRQ  byte = 0x20
	itemPresContextAC  byte = 0x21
	itemAbstractSyntax byte = 0x30
	itemTransferSyntax byte = 0x40
	itemUserInfo       byte = 0x50
	itemMaxLength      byte = 0x51
	itemImplClassUID   byte = 0x52
	itemAsyncOps       byte = 0x53
	itemRoleSelection  byte = 0x54
	itemImplVersion    byte = 0x55
)

// ApplicationContextName is the DICOM application context (PS3.7 A.2.1).
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

const (
	pduHeaderLen = 6
	pdvHeaderLen = 6 // item length (4) + presentation context ID (1) + message control header (1)
	// maxAssocPDULen caps A-ASSOCIATE-RQ/AC/RJ bodies. 128 contexts with a
	// dozen 64-byte transfer syntaxes each fit comfortably.
	maxAssocPDULen = 256 << 10
	// MinPDULength is the smallest maximum PDU length we accept to advertise
	// or honour; smaller peer values are raised to it when sending is impossible.
	MinPDULength = 1024
	// HardMaxPDULength caps every P-DATA-TF PDU we read, whatever we advertised.
	HardMaxPDULength = 16 << 20
)

// Presentation context results (PS3.8 Table 9-18).
const (
	ResultAcceptance                   byte = 0
	ResultUserRejection                byte = 1
	ResultNoReason                     byte = 2
	ResultAbstractSyntaxNotSupported   byte = 3
	ResultTransferSyntaxesNotSupported byte = 4
)

// A-ASSOCIATE-RJ result/source/reason values (PS3.8 Table 9-21).
const (
	rjPermanent = 1
	rjTransient = 2

	rjSourceUser         = 1 // DICOM UL service-user
	rjSourceProviderACSE = 2 // DICOM UL service-provider (ACSE related)
	rjSourceProviderPres = 3 // DICOM UL service-provider (presentation related)

	rjReasonNoReason               = 1
	rjReasonAppContextNotSupported = 2
	rjReasonCallingAENotRecognized = 3
	rjReasonCalledAENotRecognized  = 7
	rjReasonProtocolVersion        = 2 // with source 2
	rjReasonLocalLimitExceeded     = 2 // with source 3
)

// A-ABORT source/reason values (PS3.8 Table 9-26).
const (
	abortSourceUser     = 0
	abortSourceProvider = 2

	abortReasonNotSpecified      = 0
	abortReasonUnrecognizedPDU   = 1
	abortReasonUnexpectedPDU     = 2
	abortReasonUnrecognizedParam = 4
	abortReasonUnexpectedParam   = 5
	abortReasonInvalidParam      = 6
)

// roleSelection is a SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4).
type roleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// associateParams is the decoded content of an A-ASSOCIATE-RQ or -AC.
type associateParams struct {
	ProtocolVersion uint16
	CalledAE        string
	CallingAE       string
	AppContext      string
	Contexts        []presentationContext
	MaxLength       uint32 // 0 = unlimited
	ImplClassUID    string
	ImplVersion     string
	AsyncOps        *[2]uint16 // max invoked, max performed; nil if absent
	Roles           []roleSelection
}

// presentationContext is one proposed (RQ) or answered (AC) context.
type presentationContext struct {
	ID               byte
	AbstractSyntax   string   // RQ only
	TransferSyntaxes []string // RQ: proposed; AC: exactly one when accepted
	Result           byte     // AC only
}

// protocolError is a malformed or unexpected PDU; it maps to an A-ABORT reason.
type protocolError struct {
	reason byte
	msg    string
}

func (e *protocolError) Error() string { return "dimse: protocol error: " + e.msg }
func (e *protocolError) Unwrap() error { return ErrProtocol }

func errInvalid(format string, a ...any) error {
	return &protocolError{reason: abortReasonInvalidParam, msg: fmt.Sprintf(format, a...)}
}

// readPDUHeader reads the 6-byte PDU header.
func readPDUHeader(r io.Reader) (typ byte, length uint32, err error) {
	var h [pduHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	return h[0], binary.BigEndian.Uint32(h[2:]), nil
}

func putPDUHeader(b []byte, typ byte, length int) {
	b[0] = typ
	b[1] = 0
	binary.BigEndian.PutUint32(b[2:], uint32(length))
}

// uidString trims the trailing NUL/space padding of a UID.
func uidString(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

// aeString trims an AE title (16 bytes, space padded); leading spaces are insignificant too.
func aeString(b []byte) string { return strings.TrimSpace(strings.TrimRight(string(b), "\x00")) }

func padAE(s string) []byte {
	b := []byte("                ")
	copy(b, s)
	return b
}

func appendItem(b []byte, typ byte, body []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// encodeAssociate encodes an A-ASSOCIATE-RQ (typ 1) or -AC (typ 2) PDU.
func encodeAssociate(typ byte, p *associateParams) []byte {
	b := make([]byte, pduHeaderLen, 1024)
	b = binary.BigEndian.AppendUint16(b, 1) // protocol version
	b = append(b, 0, 0)
	b = append(b, padAE(p.CalledAE)...)
	b = append(b, padAE(p.CallingAE)...)
	b = append(b, make([]byte, 32)...)
	b = appendItem(b, itemAppContext, []byte(p.AppContext))
	for _, pc := range p.Contexts {
		var body []byte
		if typ == pduAssociateRQ {
			body = append(body, pc.ID, 0, 0, 0)
			body = appendItem(body, itemAbstractSyntax, []byte(pc.AbstractSyntax))
			for _, ts := range pc.TransferSyntaxes {
				body = appendItem(body, itemTransferSyntax, []byte(ts))
			}
			b = appendItem(b, itemPresContextRQ, body)
		} else {
			body = append(body, pc.ID, 0, pc.Result, 0)
			ts := ""
			if len(pc.TransferSyntaxes) > 0 {
				ts = pc.TransferSyntaxes[0]
			}
			// PS3.8 9.3.3.2: the TS sub-item is present but not significant when rejected.
			body = appendItem(body, itemTransferSyntax, []byte(ts))
			b = appendItem(b, itemPresContextAC, body)
		}
	}
	var ui []byte
	ui = appendItem(ui, itemMaxLength, binary.BigEndian.AppendUint32(nil, p.MaxLength))
	ui = appendItem(ui, itemImplClassUID, []byte(p.ImplClassUID))
	if p.AsyncOps != nil {
		ui = appendItem(ui, itemAsyncOps, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, p.AsyncOps[0]), p.AsyncOps[1]))
	}
	for _, r := range p.Roles {
		var rb []byte
		rb = binary.BigEndian.AppendUint16(rb, uint16(len(r.SOPClassUID)))
		rb = append(rb, r.SOPClassUID...)
		rb = append(rb, boolByte(r.SCU), boolByte(r.SCP))
		ui = appendItem(ui, itemRoleSelection, rb)
	}
	if p.ImplVersion != "" {
		ui = appendItem(ui, itemImplVersion, []byte(p.ImplVersion))
	}
	b = appendItem(b, itemUserInfo, ui)
	putPDUHeader(b, typ, len(b)-pduHeaderLen)
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// forEachItem walks the items of b (type, reserved, 2-byte length, body),
// validating every length against the remaining bytes.
func forEachItem(b []byte, fn func(typ byte, body []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return errInvalid("truncated item header (%d bytes)", len(b))
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n > len(b)-4 {
			return errInvalid("item 0x%02x length %d exceeds the %d bytes left", b[0], n, len(b)-4)
		}
		if err := fn(b[0], b[4:4+n]); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

// decodeAssociate decodes the body (after the PDU header) of an
// A-ASSOCIATE-RQ (typ 1) or -AC (typ 2).
func decodeAssociate(typ byte, body []byte) (*associateParams, error) {
	if len(body) < 68 {
		return nil, errInvalid("A-ASSOCIATE body of %d bytes is shorter than its 68-byte fixed part", len(body))
	}
	p := &associateParams{
		ProtocolVersion: binary.BigEndian.Uint16(body[0:]),
		CalledAE:        aeString(body[4:20]),
		CallingAE:       aeString(body[20:36]),
	}
	seenUI := false
	err := forEachItem(body[68:], func(it byte, b []byte) error {
		switch it {
		case itemAppContext:
			p.AppContext = uidString(b)
		case itemPresContextRQ, itemPresContextAC:
			if (it == itemPresContextRQ) != (typ == pduAssociateRQ) {
				return errInvalid("presentation context item 0x%02x in PDU type %d", it, typ)
			}
			if len(b) < 4 {
				return errInvalid("presentation context item of %d bytes", len(b))
			}
			pc := presentationContext{ID: b[0], Result: b[2]}
			if err := forEachItem(b[4:], func(st byte, sb []byte) error {
				switch st {
				case itemAbstractSyntax:
					pc.AbstractSyntax = uidString(sb)
				case itemTransferSyntax:
					pc.TransferSyntaxes = append(pc.TransferSyntaxes, uidString(sb))
				default:
					return errInvalid("unexpected sub-item 0x%02x in presentation context", st)
				}
				return nil
			}); err != nil {
				return err
			}
			if len(p.Contexts) >= 128 {
				return errInvalid("more than 128 presentation contexts")
			}
			p.Contexts = append(p.Contexts, pc)
		case itemUserInfo:
			seenUI = true
			return forEachItem(b, func(st byte, sb []byte) error {
				switch st {
				case itemMaxLength:
					if len(sb) != 4 {
						return errInvalid("maximum length sub-item of %d bytes", len(sb))
					}
					p.MaxLength = binary.BigEndian.Uint32(sb)
				case itemImplClassUID:
					p.ImplClassUID = uidString(sb)
				case itemImplVersion:
					p.ImplVersion = strings.TrimSpace(string(sb))
				case itemAsyncOps:
					if len(sb) != 4 {
						return errInvalid("asynchronous operations window sub-item of %d bytes", len(sb))
					}
					p.AsyncOps = &[2]uint16{binary.BigEndian.Uint16(sb), binary.BigEndian.Uint16(sb[2:])}
				case itemRoleSelection:
					if len(sb) < 4 {
						return errInvalid("role selection sub-item of %d bytes", len(sb))
					}
					n := int(binary.BigEndian.Uint16(sb))
					if n != len(sb)-4 {
						return errInvalid("role selection UID length %d in a %d-byte sub-item", n, len(sb))
					}
					p.Roles = append(p.Roles, roleSelection{SOPClassUID: uidString(sb[2 : 2+n]), SCU: sb[2+n] == 1, SCP: sb[3+n] == 1})
				}
				// Other sub-items (extended negotiation, user identity, ...) are ignored (PS3.7 D.3.3).
				return nil
			})
		default:
			// Unknown items are ignored for forward compatibility (PS3.8 9.3.1).
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p.AppContext == "" {
		return nil, errInvalid("no application context item")
	}
	if !seenUI {
		return nil, errInvalid("no user information item")
	}
	return p, nil
}

// encodeSimple encodes the fixed 4-byte-body PDUs: A-ASSOCIATE-RJ
// (reserved, result, source, reason), A-RELEASE-RQ/RP and A-ABORT
// (reserved, reserved, source, reason).
func encodeSimple(typ byte, a, b, c byte) []byte {
	buf := make([]byte, pduHeaderLen+4)
	putPDUHeader(buf, typ, 4)
	buf[7], buf[8], buf[9] = a, b, c
	return buf
}
