package dimse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Command Field values (PS3.7 Table E.1-1).
const (
	cmdCStoreRQ  uint16 = 0x0001
	cmdCStoreRSP uint16 = 0x8001
	cmdCEchoRQ   uint16 = 0x0030
	cmdCEchoRSP  uint16 = 0x8030
)

// Command set element tags (group 0000), as (group<<16 | element).
const (
	tagCommandGroupLength        uint32 = 0x00000000
	tagAffectedSOPClassUID       uint32 = 0x00000002
	tagCommandField              uint32 = 0x00000100
	tagMessageID                 uint32 = 0x00000110
	tagMessageIDBeingRespondedTo uint32 = 0x00000120
	tagPriority                  uint32 = 0x00000700
	tagCommandDataSetType        uint32 = 0x00000800
	tagStatus                    uint32 = 0x00000900
	tagOffendingElement          uint32 = 0x00000901
	tagErrorComment              uint32 = 0x00000902
	tagAffectedSOPInstanceUID    uint32 = 0x00001000
	tagMoveOriginatorAE          uint32 = 0x00001030
	tagMoveOriginatorMessageID   uint32 = 0x00001031
)

// dataSetTypeNone is the Command Data Set Type meaning "no data set" (PS3.7 E.1).
const dataSetTypeNone uint16 = 0x0101

// maxCommandLen caps a command set; real ones are a few hundred bytes.
const maxCommandLen = 64 << 10

// command is a DIMSE command set: element tag → raw value (even length).
// Command sets are always Implicit VR Little Endian (PS3.7 6.3.1).
type command map[uint32][]byte

func (c command) setUS(t uint32, v uint16) { c[t] = binary.LittleEndian.AppendUint16(nil, v) }

// setUI stores a UID padded with NUL to even length.
func (c command) setUI(t uint32, v string) {
	b := []byte(v)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	c[t] = b
}

// setString stores a text value (LO/AE) padded with a space to even length.
func (c command) setString(t uint32, v string) {
	b := []byte(v)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	c[t] = b
}

func (c command) us(t uint32) (uint16, bool) {
	v, ok := c[t]
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

func (c command) str(t uint32) string { return strings.TrimRight(string(c[t]), "\x00 ") }

func (c command) hasDataSet() bool {
	v, ok := c.us(tagCommandDataSetType)
	return ok && v != dataSetTypeNone
}

// encode serialises the command set with its group length first.
func (c command) encode() []byte {
	tags := make([]uint32, 0, len(c))
	bodyLen := 0
	for t, v := range c {
		if t == tagCommandGroupLength {
			continue
		}
		tags = append(tags, t)
		bodyLen += 8 + len(v)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	b := make([]byte, 0, 12+bodyLen)
	b = appendElement(b, tagCommandGroupLength, binary.LittleEndian.AppendUint32(nil, uint32(bodyLen)))
	for _, t := range tags {
		b = appendElement(b, t, c[t])
	}
	return b
}

func appendElement(b []byte, t uint32, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(t>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(t))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// decodeCommand parses an Implicit VR Little Endian group-0000 command set.
// errors: ErrProtocol (wrapped) on a non-0000 group, an undefined or
// overlong length, or a missing Command Field.
func decodeCommand(b []byte) (command, error) {
	c := command{}
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, errInvalid("truncated command element header")
		}
		g := binary.LittleEndian.Uint16(b)
		e := binary.LittleEndian.Uint16(b[2:])
		n := binary.LittleEndian.Uint32(b[4:])
		if g != 0 {
			return nil, errInvalid("element (%04X,%04X) outside group 0000 in a command set", g, e)
		}
		if uint64(n) > uint64(len(b)-8) {
			return nil, errInvalid("command element (0000,%04X) length %d exceeds the %d bytes left", e, n, len(b)-8)
		}
		c[uint32(e)] = b[8 : 8+n]
		b = b[8+n:]
	}
	if _, ok := c.us(tagCommandField); !ok {
		return nil, errInvalid("command set without a Command Field")
	}
	return c, nil
}

func (c command) String() string {
	f, _ := c.us(tagCommandField)
	id, _ := c.us(tagMessageID)
	return fmt.Sprintf("command 0x%04X message %d", f, id)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
