package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// On-disk format (version 1): each segment file audit-NNNNNN.jsonl holds
// one record per line, '\n'-terminated. A line is the record's JSON (field
// order of Record, "hash" omitted) with `,"hash":"<64 hex>"` spliced in
// before the closing brace, where the hex is HMAC-SHA256(key, JSON without
// "hash") — so a verifier in any language takes the line, removes the
// 75-byte suffix `,"hash":"…"}`, appends "}", and recomputes the HMAC over
// exactly those bytes. prev_hash of record N is the hash of record N-1
// ("" for N = 1); the chain runs across segment files.

const (
	segmentPrefix = "audit-"
	segmentSuffix = ".jsonl"
	hashHexLen    = 2 * sha256.Size
	hashSuffixLen = len(`,"hash":"`) + hashHexLen + len(`"}`)
	// maxLineBytes bounds one line; validated records are far smaller.
	maxLineBytes = 64 << 10
)

func segmentName(n int) string { return fmt.Sprintf("%s%06d%s", segmentPrefix, n, segmentSuffix) }

// segment is one segment file of a trail directory.
type segment struct {
	num  int
	name string
}

// listSegments returns the segment files of dir ordered by number.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: list %s: %w", dir, err)
	}
	var segs []segment
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, segmentPrefix) || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		digits := strings.TrimSuffix(strings.TrimPrefix(name, segmentPrefix), segmentSuffix)
		n, err := strconv.Atoi(digits)
		if err != nil || n <= 0 || len(digits) < 6 || segmentName(n) != name {
			continue
		}
		segs = append(segs, segment{n, name})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].num < segs[j].num })
	return segs, nil
}

func newMAC(key []byte) hash.Hash { return hmac.New(sha256.New, key) }

// seal sets rec.Hash and returns the record's line, '\n' included.
func seal(mac hash.Hash, rec *Record) ([]byte, error) {
	rec.Hash = ""
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("audit: encode record: %w", err)
	}
	mac.Reset()
	mac.Write(body)
	rec.Hash = hex.EncodeToString(mac.Sum(nil))
	line := make([]byte, 0, len(body)+hashSuffixLen+1)
	line = append(line, body[:len(body)-1]...)
	line = append(line, `,"hash":"`...)
	line = append(line, rec.Hash...)
	line = append(line, "\"}\n"...)
	return line, nil
}

var (
	errGarbled  = errors.New("not a valid record line")
	errModified = errors.New("hash mismatch")
)

// openLine parses one line (without '\n') and checks its HMAC. It returns
// errGarbled for anything that is not a well-formed record line and
// errModified (with the parsed record) when the HMAC does not match.
func openLine(mac hash.Hash, line []byte) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, fmt.Errorf("%w: %v", errGarbled, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return rec, fmt.Errorf("%w: data after the record", errGarbled)
	}
	if len(rec.Hash) != hashHexLen || len(line) < hashSuffixLen+2 ||
		!bytes.Equal(line[len(line)-hashSuffixLen:], []byte(`,"hash":"`+rec.Hash+`"}`)) {
		return rec, fmt.Errorf("%w: \"hash\" is not the last field with 64 hex digits", errGarbled)
	}
	got, err := hex.DecodeString(rec.Hash)
	if err != nil {
		return rec, fmt.Errorf("%w: hash is not hex", errGarbled)
	}
	body := make([]byte, 0, len(line)-hashSuffixLen+1)
	body = append(body, line[:len(line)-hashSuffixLen]...)
	body = append(body, '}')
	mac.Reset()
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return rec, errModified
	}
	return rec, nil
}

// lineReader yields the lines of one segment file with their numbers and
// byte offsets.
type lineReader struct {
	buf     []byte
	r       io.Reader
	start   int // start of unread data in buf
	end     int // end of data in buf
	eof     bool
	offset  int64 // file offset of buf[start]
	lineNo  int
	readErr error
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: r, buf: make([]byte, 2*maxLineBytes)}
}

// next returns the next line without '\n'. complete is false for a final
// line without '\n' (torn or truncated); tooLong reports a line over
// maxLineBytes (the rest of the file is then not read). ok is false at
// the end of the file.
func (lr *lineReader) next() (line []byte, off int64, complete, tooLong, ok bool, err error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.start:lr.end], '\n'); i >= 0 {
			line = lr.buf[lr.start : lr.start+i]
			off = lr.offset
			lr.start += i + 1
			lr.offset += int64(i + 1)
			lr.lineNo++
			return line, off, true, false, true, nil
		}
		if lr.end-lr.start > maxLineBytes {
			lr.lineNo++
			return nil, lr.offset, false, true, true, nil
		}
		if lr.eof {
			if lr.start == lr.end {
				return nil, lr.offset, false, false, false, lr.readErr
			}
			line = lr.buf[lr.start:lr.end]
			off = lr.offset
			lr.offset += int64(lr.end - lr.start)
			lr.start = lr.end
			lr.lineNo++
			return line, off, false, false, true, nil
		}
		if lr.start > 0 {
			n := copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.start, lr.end = 0, n
		}
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		if err != nil {
			lr.eof = true
			if err != io.EOF {
				lr.readErr = err
			}
		}
	}
}

// seqOf extracts "seq" from a line cheaply for reorder classification.
func seqOf(line []byte) (uint64, bool) {
	var v struct {
		Seq *uint64 `json:"seq"`
	}
	if json.Unmarshal(line, &v) != nil || v.Seq == nil {
		return 0, false
	}
	return *v.Seq, true
}

func segPath(dir string, s segment) string { return filepath.Join(dir, s.name) }
