package dimse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// FileMeta is the File Meta Information (group 0002) of a DICOM Part 10 file
// (PS3.10 7.1).
type FileMeta struct {
	MediaStorageSOPClassUID      string // (0002,0002)
	MediaStorageSOPInstanceUID   string // (0002,0003)
	TransferSyntaxUID            string // (0002,0010)
	ImplementationClassUID       string // (0002,0012)
	ImplementationVersionName    string // (0002,0013), optional
	SourceApplicationEntityTitle string // (0002,0016), optional
}

const (
	preambleLen = 128
	maxMetaLen  = 64 << 10
)

// WritePart10 writes a Part 10 file to w: 128-byte zero preamble, "DICM",
// the file meta group (group length, version 00 01, media storage SOP
// class/instance, transfer syntax, implementation class UID and version
// name, source AE title when set), then the data set bytes copied unchanged
// from dataset (encoded in meta.TransferSyntaxUID). Empty ImplementationClassUID
// defaults to radflow's. Returns the number of bytes written.
func WritePart10(w io.Writer, meta FileMeta, dataset io.Reader) (int64, error) {
	head, err := AppendPart10Header(nil, meta)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(head)
	if err != nil {
		return int64(n), err
	}
	m, err := io.Copy(w, dataset)
	return int64(n) + m, err
}

// AppendPart10Header appends what precedes the data set in a Part 10 file
// (PS3.10 7.1): the 128-byte preamble (zeros), "DICM" and the File Meta
// Information group (0002,xxxx) in Explicit VR Little Endian, with meta's
// UIDs; ImplementationClassUID/VersionName default to radflow's.
// errors: ErrInvalidArgument when a required UID is missing.
func AppendPart10Header(dst []byte, meta FileMeta) ([]byte, error) {
	if meta.MediaStorageSOPClassUID == "" || meta.MediaStorageSOPInstanceUID == "" || meta.TransferSyntaxUID == "" {
		return dst, fmt.Errorf("%w: file meta needs SOP class, SOP instance and transfer syntax UIDs", ErrInvalidArgument)
	}
	if meta.ImplementationClassUID == "" {
		meta.ImplementationClassUID = ImplementationClassUID
		if meta.ImplementationVersionName == "" {
			meta.ImplementationVersionName = ImplementationVersionName
		}
	}
	var body []byte
	body = appendExplicit(body, 0x0001, "OB", []byte{0, 1})
	body = appendExplicit(body, 0x0002, "UI", padUID(meta.MediaStorageSOPClassUID))
	body = appendExplicit(body, 0x0003, "UI", padUID(meta.MediaStorageSOPInstanceUID))
	body = appendExplicit(body, 0x0010, "UI", padUID(meta.TransferSyntaxUID))
	body = appendExplicit(body, 0x0012, "UI", padUID(meta.ImplementationClassUID))
	if meta.ImplementationVersionName != "" {
		body = appendExplicit(body, 0x0013, "SH", padText(meta.ImplementationVersionName))
	}
	if meta.SourceApplicationEntityTitle != "" {
		body = appendExplicit(body, 0x0016, "AE", padText(meta.SourceApplicationEntityTitle))
	}
	dst = append(dst, make([]byte, preambleLen)...)
	dst = append(dst, "DICM"...)
	dst = appendExplicit(dst, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(body))))
	return append(dst, body...), nil
}

// WritePart10File writes a Part 10 file (see WritePart10) to path
// atomically: a temporary file in the same directory is written, fsynced and
// renamed over path.
func WritePart10File(path string, meta FileMeta, dataset io.Reader) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".part10-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := WritePart10(f, meta, dataset); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func padUID(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func padText(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	return b
}

// appendExplicit appends a group-0002 Explicit VR Little Endian element.
func appendExplicit(b []byte, elem uint16, vr string, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0002)
	b = binary.LittleEndian.AppendUint16(b, elem)
	b = append(b, vr...)
	if longVR(vr) {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...)
}

func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// ReadFileMeta reads the preamble, "DICM" and the file meta group of a
// Part 10 file from r and returns the meta and the byte offset of the data
// set that follows. errors: ErrNotPart10 (no "DICM" at offset 128, or a
// malformed or oversized (> 64 KiB) file meta group, or no transfer syntax).
func ReadFileMeta(r io.ReaderAt) (FileMeta, int64, error) {
	var meta FileMeta
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], preambleLen); err != nil || string(magic[:]) != "DICM" {
		return meta, 0, fmt.Errorf("%w: no DICM prefix at offset 128", ErrNotPart10)
	}
	off := int64(preambleLen + 4)
	var h [12]byte
	for {
		n, err := r.ReadAt(h[:8], off)
		if n < 8 {
			if err == io.EOF && n == 0 {
				break // a file with only the meta group
			}
			return meta, 0, fmt.Errorf("%w: truncated file meta at offset %d", ErrNotPart10, off)
		}
		if binary.LittleEndian.Uint16(h[:]) != 0x0002 {
			break
		}
		elem := binary.LittleEndian.Uint16(h[2:])
		vr := string(h[4:6])
		var vlen uint32
		hdr := int64(8)
		if longVR(vr) {
			if _, err := r.ReadAt(h[8:12], off+8); err != nil {
				return meta, 0, fmt.Errorf("%w: truncated file meta element", ErrNotPart10)
			}
			vlen = binary.LittleEndian.Uint32(h[8:])
			hdr = 12
		} else {
			vlen = uint32(binary.LittleEndian.Uint16(h[6:]))
		}
		if off+hdr+int64(vlen) > preambleLen+4+maxMetaLen {
			return meta, 0, fmt.Errorf("%w: file meta group longer than %d bytes", ErrNotPart10, maxMetaLen)
		}
		val := make([]byte, vlen)
		if _, err := r.ReadAt(val, off+hdr); err != nil {
			return meta, 0, fmt.Errorf("%w: truncated file meta element (0002,%04X)", ErrNotPart10, elem)
		}
		s := strings.TrimRight(string(bytes.TrimRight(val, "\x00")), " ")
		switch elem {
		case 0x0002:
			meta.MediaStorageSOPClassUID = s
		case 0x0003:
			meta.MediaStorageSOPInstanceUID = s
		case 0x0010:
			meta.TransferSyntaxUID = s
		case 0x0012:
			meta.ImplementationClassUID = s
		case 0x0013:
			meta.ImplementationVersionName = strings.TrimSpace(s)
		case 0x0016:
			meta.SourceApplicationEntityTitle = strings.TrimSpace(s)
		}
		off += hdr + int64(vlen)
	}
	if meta.TransferSyntaxUID == "" {
		return meta, 0, fmt.Errorf("%w: file meta without a transfer syntax UID", ErrNotPart10)
	}
	return meta, off, nil
}
