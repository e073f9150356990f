package audit

import (
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"strings"
	"time"
)

// ErrTampered is wrapped by every *Problem: the trail failed verification.
var ErrTampered = errors.New("audit: trail failed verification")

// ProblemKind classifies a verification failure.
type ProblemKind string

// Problem kinds.
const (
	// ProblemModified: a record's HMAC does not match its content (an
	// edited field, a recomputed plain hash, or a different key).
	ProblemModified ProblemKind = "modified"
	// ProblemGap: sequence numbers jump (records removed).
	ProblemGap ProblemKind = "gap"
	// ProblemReordered: a record appears before one with a lower seq, or
	// a seq repeats.
	ProblemReordered ProblemKind = "reordered"
	// ProblemGarbled: a line that is not a well-formed record.
	ProblemGarbled ProblemKind = "garbled"
	// ProblemTruncated: a final line without its newline (cut short), an
	// empty segment file followed by others, or (VerifyAnchor) a trail
	// that ends before the anchored seq.
	ProblemTruncated ProblemKind = "truncated"
	// ProblemBrokenLink: a record's prev_hash is not the previous record's
	// hash (within a segment or between two segment files).
	ProblemBrokenLink ProblemKind = "broken-link"
	// ProblemMissingSegment: a segment file is missing from the numbering.
	ProblemMissingSegment ProblemKind = "missing-segment"
	// ProblemEmpty: the audit directory is missing or holds no record
	// although a key was given. Open writes an audit:started record at
	// every start, so a trail that was ever opened is never empty: the
	// trail was emptied or deleted.
	ProblemEmpty ProblemKind = "empty"
	// ProblemAnchor: the trail does not hold the record an external anchor
	// names (VerifyAnchor): the anchored seq has another hash, or no record
	// has the anchored hash. A trail that ends before the anchored seq is
	// reported as ProblemTruncated.
	ProblemAnchor ProblemKind = "anchor-mismatch"
)

// Problem is the first verification failure found, with its location.
// It wraps ErrTampered.
type Problem struct {
	Kind ProblemKind
	// File is the segment file name (not the full path); Line is 1-based
	// (0 when the problem concerns a whole file).
	File string
	Line int
	// Seq is the seq of the record at File:Line as written (0 if unknown);
	// Expected is the seq the chain expected there (0 if not applicable).
	Seq, Expected uint64
	// Detail explains the problem in words (no record content).
	Detail string
}

func (p *Problem) Error() string {
	if p.File == "" {
		return fmt.Sprintf("audit: %s: %s", p.Kind, p.Detail)
	}
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("audit: %s at %s: %s", p.Kind, loc, p.Detail)
}

// Unwrap returns ErrTampered.
func (p *Problem) Unwrap() error { return ErrTampered }

// Summary describes a verified trail.
type Summary struct {
	Records  uint64 // records read
	Segments int    // segment files
	LastSeq  uint64
	LastHash string // hex; "" for an empty trail
	// FirstTime and LastTime are the times of the first and last record.
	FirstTime, LastTime time.Time
}

// Verify checks the whole trail in dir with key: every line parses, every
// HMAC matches, seq runs 1, 2, 3, ... without gaps or reordering, each
// prev_hash is the previous record's hash across segment files, no
// segment file is missing, and there is at least one record (a missing
// directory or a trail without records is ProblemEmpty: Open writes
// audit:started at every start). It returns the summary and nil, or the
// first problem as a *Problem (wrapping ErrTampered) or an I/O error,
// with the summary of the records verified before it.
//
// Verify alone cannot detect the removal of whole records from the end of
// the trail: what remains is a valid shorter chain. Compare
// Summary.LastSeq/LastHash with an anchor held elsewhere (the syslog copy,
// the "audit trail opened" log line, a value noted by a periodic job) with
// VerifyAnchor.
func Verify(dir string, key []byte) (Summary, error) { return Scan(dir, key, nil) }

// Anchor names a record an operator recorded outside the trail (from
// syslog, a periodic "radflow audit verify", the "audit trail opened" log
// line): its seq, its hash (64 hex digits), or both.
type Anchor struct {
	Seq  uint64
	Hash string
}

// VerifyAnchor verifies the trail like Verify and then checks that it
// still holds the anchored record: a trail that ends before a.Seq is
// ProblemTruncated (records removed from the end); a record a.Seq whose
// hash is not a.Hash, or (a.Seq 0) no record with hash a.Hash, is
// ProblemAnchor. Both are *Problem wrapping ErrTampered. Records after
// the anchor are verified by the chain but cannot be checked against it.
// errors: ErrInvalidAnchor for a zero anchor or a hash that is not 64
// hex digits.
func VerifyAnchor(dir string, key []byte, a Anchor) (Summary, error) {
	a.Hash = strings.ToLower(a.Hash)
	if (a.Seq == 0 && a.Hash == "") || (a.Hash != "" && (len(a.Hash) != hashHexLen || strings.Trim(a.Hash, "0123456789abcdef") != "")) {
		return Summary{}, ErrInvalidAnchor
	}
	var found bool
	var gotHash string
	sum, err := Scan(dir, key, func(r Record) error {
		switch {
		case a.Seq != 0 && r.Seq == a.Seq:
			found, gotHash = true, r.Hash
		case a.Seq == 0 && r.Hash == a.Hash:
			found = true
		}
		return nil
	})
	if err != nil {
		return sum, err
	}
	switch {
	case a.Seq != 0 && !found:
		return sum, &Problem{Kind: ProblemTruncated, Seq: sum.LastSeq, Expected: a.Seq,
			Detail: fmt.Sprintf("the trail ends at seq %d but the anchor names seq %d: records %d..%d (at least) were removed from the end", sum.LastSeq, a.Seq, sum.LastSeq+1, a.Seq)}
	case a.Seq != 0 && a.Hash != "" && gotHash != a.Hash:
		return sum, &Problem{Kind: ProblemAnchor, Seq: a.Seq, Expected: a.Seq,
			Detail: fmt.Sprintf("seq %d has hash %s, the anchor says %s (the chain was rewritten with the key, or the anchor is from another trail)", a.Seq, gotHash, a.Hash)}
	case a.Seq == 0 && !found:
		return sum, &Problem{Kind: ProblemAnchor,
			Detail: fmt.Sprintf("no record has the anchored hash %s (records removed from the end, the chain rewritten with the key, or the anchor is from another trail)", a.Hash)}
	}
	return sum, nil
}

// ErrInvalidAnchor is returned by VerifyAnchor for an anchor without seq
// and hash, or with a hash that is not 64 hex digits.
var ErrInvalidAnchor = errors.New("audit: anchor needs a seq ≥ 1 and/or a hash of 64 hex digits")

// Scan verifies like Verify and calls fn (when non-nil) with each record,
// in order, before moving on; records after a problem are not passed. An
// error from fn stops the scan and is returned as is.
func Scan(dir string, key []byte, fn func(Record) error) (sum Summary, err error) {
	if len(key) == 0 {
		return Summary{}, fmt.Errorf("%w: empty", ErrKey)
	}
	segs, err := listSegments(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Summary{}, &Problem{Kind: ProblemEmpty, Detail: fmt.Sprintf("audit directory %s does not exist but its HMAC key does: the trail was deleted or moved", dir)}
	}
	if err != nil {
		return Summary{}, err
	}
	c := &chain{mac: newMAC(key), known: true}
	defer func() { // also on a problem: what was verified before it
		sum.Records, sum.LastSeq, sum.LastHash = c.count, c.seq, c.prev
		sum.FirstTime, sum.LastTime = c.firstTime, c.lastTime
	}()
	for i, s := range segs {
		want := 1
		if i > 0 {
			want = segs[i-1].num + 1
		}
		if s.num != want {
			return sum, &Problem{Kind: ProblemMissingSegment, File: segmentName(want),
				Detail: fmt.Sprintf("segment file missing (next present: %s)", s.name)}
		}
		n, _, err := c.scanFile(dir, s, fn, false)
		if err != nil {
			return sum, err
		}
		if n == 0 && i < len(segs)-1 {
			return sum, &Problem{Kind: ProblemTruncated, File: s.name, Detail: "segment file is empty but later segments exist"}
		}
		sum.Segments++
	}
	if c.count == 0 {
		return sum, &Problem{Kind: ProblemEmpty, Detail: fmt.Sprintf("no records in %d segment files: the trail was emptied or deleted (every start writes audit:started)", len(segs))}
	}
	return sum, nil
}

// chain is the verification state carried from record to record.
type chain struct {
	mac   hash.Hash
	known bool   // false: accept the first record's seq/prev_hash (tail resume)
	seq   uint64 // seq of the last good record (0: none yet)
	prev  string // hash of the last good record
	count uint64
	// location of the last good record, for link messages
	lastFile            string
	firstTime, lastTime time.Time
}

// scanFile checks one segment file. With allowTorn, a final line without
// '\n' is not a problem: its offset is returned as torn (else -1) and the
// line is ignored. It returns the number of good records in the file.
func (c *chain) scanFile(dir string, s segment, fn func(Record) error, allowTorn bool) (n int, torn int64, err error) {
	torn = -1
	f, err := os.Open(segPath(dir, s))
	if err != nil {
		return 0, torn, fmt.Errorf("audit: open segment: %w", err)
	}
	defer f.Close()
	lr := newLineReader(f)
	first := true
	for {
		line, off, complete, tooLong, ok, err := lr.next()
		if err != nil {
			return n, torn, fmt.Errorf("audit: read %s: %w", s.name, err)
		}
		if !ok {
			return n, torn, nil
		}
		p := &Problem{File: s.name, Line: lr.lineNo}
		if tooLong {
			p.Kind, p.Detail = ProblemGarbled, fmt.Sprintf("line longer than %d bytes", maxLineBytes)
			return n, torn, p
		}
		if !complete {
			if allowTorn {
				return n, off, nil
			}
			p.Kind, p.Detail = ProblemTruncated, "last line has no newline (cut short)"
			if seq, ok := seqOf(line); ok {
				p.Seq = seq
			}
			return n, torn, p
		}
		rec, err := openLine(c.mac, line)
		p.Seq = rec.Seq
		switch {
		case errors.Is(err, errGarbled):
			p.Kind, p.Detail = ProblemGarbled, err.Error()
			return n, torn, p
		case errors.Is(err, errModified):
			p.Kind, p.Detail = ProblemModified, fmt.Sprintf("hash mismatch at seq %d (record edited, or another key)", rec.Seq)
			return n, torn, p
		}
		if c.known || c.seq != 0 {
			want := c.seq + 1
			switch {
			case rec.Seq > want:
				p.Expected = want
				// Look ahead in this file: if the expected seq comes later,
				// the records were reordered, not removed.
				for k := 0; k < 64; k++ {
					l2, _, complete2, tooLong2, ok2, _ := lr.next()
					if !ok2 || tooLong2 || !complete2 {
						break
					}
					if seq2, ok := seqOf(l2); ok && seq2 == want {
						p.Kind = ProblemReordered
						p.Detail = fmt.Sprintf("seq %d appears before seq %d (line %d)", rec.Seq, want, lr.lineNo)
						return n, torn, p
					}
				}
				p.Kind = ProblemGap
				if rec.Seq == want+1 {
					p.Detail = fmt.Sprintf("seq gap %d→%d: record %d missing", c.seq, rec.Seq, want)
				} else {
					p.Detail = fmt.Sprintf("seq gap %d→%d: records %d..%d missing", c.seq, rec.Seq, want, rec.Seq-1)
				}
				return n, torn, p
			case rec.Seq < want:
				p.Kind, p.Expected = ProblemReordered, want
				p.Detail = fmt.Sprintf("seq %d follows seq %d (reordered or duplicated)", rec.Seq, c.seq)
				return n, torn, p
			}
			if rec.PrevHash != c.prev {
				p.Kind, p.Expected = ProblemBrokenLink, want
				if first && c.lastFile != "" && c.lastFile != s.name {
					p.Detail = fmt.Sprintf("prev_hash of seq %d does not match the last record of %s", rec.Seq, c.lastFile)
				} else {
					p.Detail = fmt.Sprintf("prev_hash of seq %d does not match the hash of seq %d", rec.Seq, c.seq)
				}
				return n, torn, p
			}
		} else if rec.Seq == 0 {
			p.Kind, p.Detail = ProblemGarbled, "seq 0"
			return n, torn, p
		}
		if c.count == 0 {
			c.firstTime = rec.Time
		}
		c.seq, c.prev, c.lastFile, c.lastTime = rec.Seq, rec.Hash, s.name, rec.Time
		c.count++
		n++
		first = false
		if fn != nil {
			if err := fn(rec); err != nil {
				return n, torn, err
			}
		}
	}
}
