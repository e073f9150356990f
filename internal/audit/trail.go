package audit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxSegmentBytes is the segment size after which a new segment
// file is started.
const DefaultMaxSegmentBytes = 64 << 20

// DefaultAppendTimeout bounds how long Append waits for its record to be
// durable when Config.AppendTimeout is 0.
const DefaultAppendTimeout = 10 * time.Second

// Errors of Trail.
var (
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("audit: trail closed")
	// ErrFailed wraps the write or fsync error that stopped the trail;
	// every later Append returns it until the trail is reopened.
	ErrFailed = errors.New("audit: trail failed")
	// ErrLocked is returned by Open when another process has the trail open.
	ErrLocked = errors.New("audit: trail is open in another process")
	// ErrAppendTimeout is returned by Append when its record was not
	// durable within Config.AppendTimeout (a hung disk); it also wraps
	// context.DeadlineExceeded. The record may still be written later.
	ErrAppendTimeout = errors.New("audit: append timed out")
)

// Config configures Open.
type Config struct {
	// Dir is the audit directory (created 0700), e.g. <data>/audit.
	Dir string
	// Key is the HMAC-SHA256 key, at least 32 bytes (see LoadOrCreateKey).
	Key []byte
	// MaxSegmentBytes starts a new segment file once the current one would
	// exceed it; 0 means DefaultMaxSegmentBytes.
	MaxSegmentBytes int64
	// Sinks receive every record after it is durable, asynchronously, with
	// retries (see Forwarder); a sink failure never fails Append.
	Sinks []Sink
	// Forwarding configures the forwarders of Sinks.
	Forwarding ForwarderConfig
	// Logger receives sink failures and recovery notices (no record
	// content); nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for records without Time; nil means time.Now.
	Now func() time.Time
	// AppendTimeout bounds the wait of one Append for its write and fsync;
	// 0 means DefaultAppendTimeout. The caller's context does not shorten
	// or cancel it (see Append).
	AppendTimeout time.Duration
	// Version is the software version written in the audit:started record
	// (detail "version"); "" means the main module's version from the
	// build information, with the VCS revision when the build has one.
	// Characters outside [A-Za-z0-9._+()-] are replaced by "_".
	Version string
	// NoStartRecord leaves out the audit:started record that Open appends
	// at every start. Only for tests of the chain itself: without it an
	// emptied trail cannot be told from a new one.
	NoStartRecord bool
}

// Trail is an append-only, HMAC-chained audit trail in one directory. It
// is safe for concurrent use; concurrent Appends share one write and one
// fsync (group commit). Only one process may have a directory open.
type Trail struct {
	cfg        Config
	forwarders []*Forwarder
	lock       *os.File

	mu      sync.Mutex
	queue   []*pending
	closed  bool
	err     error // sticky failure
	wake    chan struct{}
	done    chan struct{}
	lastSeq uint64
	lastHsh string

	// writer goroutine state
	mac     hash.Hash
	f       *os.File
	segNum  int
	segSize int64
	seq     uint64
	prev    string
}

type pending struct {
	rec  Record
	done chan error
}

// Open opens (creating if needed) the trail in cfg.Dir and resumes the
// chain after its last record. The last segment file is verified (HMACs,
// seq continuity, links); a problem there is returned as a *Problem
// (wrapping ErrTampered) and the trail is not opened. A final line left
// without its newline by a crash during an unacknowledged write is cut off
// and an audit:recovered record (detail: segment, truncated_bytes) is
// appended in its place. Then, unless cfg.NoStartRecord, an audit:started
// record (subject system "radflow", detail version; no host name, pid or
// path) is appended and the resulting last seq and hash are logged at Info
// ("audit trail opened", last_seq, last_hash) so that the system log holds
// an anchor for the end of the trail. The directory is locked
// (<dir>/.lock, flock) for the trail's life. Errors: ErrKey for a short
// key, ErrLocked when another process has it open, os errors, the Append
// error of the start record.
func Open(cfg Config) (*Trail, error) {
	if len(cfg.Key) < KeySize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrKey, len(cfg.Key), KeySize)
	}
	if cfg.Dir == "" {
		return nil, errors.New("audit: Config.Dir is empty")
	}
	if cfg.MaxSegmentBytes <= 0 {
		cfg.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AppendTimeout <= 0 {
		cfg.AppendTimeout = DefaultAppendTimeout
	}
	cfg.Key = append([]byte(nil), cfg.Key...)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: create directory: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	t := &Trail{cfg: cfg, lock: lock, mac: newMAC(cfg.Key), wake: make(chan struct{}, 1), done: make(chan struct{})}
	recovered, err := t.resume()
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	for _, s := range cfg.Sinks {
		t.forwarders = append(t.forwarders, NewForwarder(s, cfg.Forwarding, cfg.Logger))
	}
	t.lastSeq, t.lastHsh = t.seq, t.prev
	go t.writer()
	if recovered != nil {
		if err := t.Append(context.Background(), *recovered); err != nil {
			t.Close()
			return nil, err
		}
	}
	if !cfg.NoStartRecord {
		start := Record{SubjectKind: KindSystem, SubjectID: "radflow", Action: ActionAuditStarted,
			Resource: Resource{Type: "system"}, Outcome: OutcomeSuccess, Protocol: ProtocolInternal,
			Detail: map[string]string{"version": softwareVersion(cfg.Version)}}
		if err := t.Append(context.Background(), start); err != nil {
			t.Close()
			return nil, err
		}
		seq, h := t.Last()
		cfg.Logger.Info("audit trail opened", "last_seq", seq, "last_hash", h)
	}
	return t, nil
}

// softwareVersion returns v, or the build's main module version (with
// "+" and 12 digits of the VCS revision when known), with characters the
// version detail does not accept replaced by "_", at most 64 bytes.
func softwareVersion(v string) string {
	if v == "" {
		v = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += "+" + s.Value[:12]
				}
			}
		}
	}
	b := []byte(v)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._+()-", c) >= 0) {
			b[i] = '_'
		}
	}
	return string(b)
}

// resume positions the writer after the last record, repairing a torn
// final line.
func (t *Trail) resume() (*Record, error) {
	dir := t.cfg.Dir
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, t.openSegment(1)
	}
	last := segs[len(segs)-1]
	c := &chain{mac: t.mac}
	n, torn, err := c.scanFile(dir, last, nil, true)
	if err != nil {
		return nil, err
	}
	var recovered *Record
	if torn >= 0 {
		st, err := os.Stat(segPath(dir, last))
		if err != nil {
			return nil, fmt.Errorf("audit: stat segment: %w", err)
		}
		if err := os.Truncate(segPath(dir, last), torn); err != nil {
			return nil, fmt.Errorf("audit: cut torn line: %w", err)
		}
		cut := st.Size() - torn
		t.cfg.Logger.Warn("audit: removed a torn final line left by an interrupted write", "segment", last.name, "bytes", cut)
		recovered = &Record{SubjectKind: KindSystem, SubjectID: "radflow", Action: ActionAuditRecovered,
			Resource: Resource{Type: "audit"}, Outcome: OutcomeSuccess, Protocol: ProtocolInternal,
			Detail: map[string]string{"segment": last.name, "truncated_bytes": strconv.FormatInt(cut, 10)}}
	}
	if n == 0 && len(segs) > 1 {
		prev := segs[len(segs)-2]
		c = &chain{mac: t.mac}
		if _, _, err := c.scanFile(dir, prev, nil, false); err != nil {
			return nil, err
		}
	}
	t.seq, t.prev = c.seq, c.prev
	f, err := os.OpenFile(segPath(dir, last), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: stat segment: %w", err)
	}
	t.f, t.segNum, t.segSize = f, last.num, st.Size()
	return recovered, nil
}

// openSegment creates segment n (which must not exist) and syncs the
// directory so the new name is durable.
func (t *Trail) openSegment(n int) error {
	f, err := os.OpenFile(filepath.Join(t.cfg.Dir, segmentName(n)), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit: create segment: %w", err)
	}
	if err := syncDir(t.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	t.f, t.segNum, t.segSize = f, n, 0
	return nil
}

// Append validates rec, assigns Seq, PrevHash and Hash (and Time in UTC
// and EventID when empty), and returns once the record is written and
// fsync'd — the caller may then serve the request. Any error (invalid
// record: ErrInvalidRecord; closed: ErrClosed; write/fsync failure:
// ErrFailed, sticky; no fsync within Config.AppendTimeout:
// ErrAppendTimeout, the record may still be written) means the record is
// not known to be durable and the caller must fail the request.
//
// ctx's cancellation and deadline are ignored (context.WithoutCancel):
// the record of something that happened must not be lost because the
// client went away or its request timed out meanwhile; the wait is bounded
// by Config.AppendTimeout instead.
func (t *Trail) Append(ctx context.Context, rec Record) error {
	if err := t.prepare(&rec); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.cfg.AppendTimeout)
	defer cancel()
	return t.enqueue(ctx, []Record{rec})
}

// prepare validates rec and fills in what Append sets before sealing:
// the time (now, UTC), a new event id, Detail without empty values.
// errors: ErrInvalidRecord.
func (t *Trail) prepare(rec *Record) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if rec.Time.IsZero() {
		rec.Time = t.cfg.Now()
	}
	rec.Time = rec.Time.UTC()
	if rec.Time.Year() < 1 || rec.Time.Year() > 9999 {
		return invalid("time: out of range")
	}
	if rec.EventID == "" {
		rec.EventID = newUUID()
	}
	if len(rec.Roles) > 0 {
		rec.Roles = append([]string(nil), rec.Roles...)
	}
	var detail map[string]string
	for k, v := range rec.Detail {
		if v == "" {
			continue
		}
		if detail == nil {
			detail = make(map[string]string, len(rec.Detail))
		}
		detail[k] = v
	}
	rec.Detail = detail
	return nil
}

// enqueue hands prepared records to the writer, in order, and waits
// until all are durable (or for the first error) or ctx ends: then the
// records stay queued and may still be written.
func (t *Trail) enqueue(ctx context.Context, recs []Record) error {
	if ctx.Err() != nil { // nothing queued
		return t.waitErr(ctx)
	}
	ps := make([]*pending, len(recs))
	for i := range recs {
		ps[i] = &pending{rec: recs[i], done: make(chan error, 1)}
	}
	t.mu.Lock()
	switch {
	case t.closed:
		t.mu.Unlock()
		return ErrClosed
	case t.err != nil:
		err := t.err
		t.mu.Unlock()
		return err
	}
	t.queue = append(t.queue, ps...)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	for _, p := range ps {
		select {
		case err := <-p.done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return t.waitErr(ctx)
		}
	}
	return nil
}

// waitErr is the error of an append whose ctx ended: ErrAppendTimeout
// for a deadline (Append's AppendTimeout), else ctx's error.
func (t *Trail) waitErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s: %w", ErrAppendTimeout, t.cfg.AppendTimeout, ctx.Err())
	}
	return fmt.Errorf("audit: waiting for the append: %w", ctx.Err())
}

// Stage prepares rec as Append would (time, event id, validation) and
// returns its JSON for a staging table written in the same transaction
// as what it records (store.SQLite.StageAuditTx): it is durable when that
// transaction is, and AppendStaged later seals it into the chain (with
// its time and event id as staged). errors: ErrInvalidRecord, ErrClosed,
// or the trail's sticky failure (nothing may be recorded as stored then).
func (t *Trail) Stage(rec Record) ([]byte, error) {
	if err := t.Err(); err != nil {
		return nil, err
	}
	if err := t.prepare(&rec); err != nil {
		return nil, err
	}
	return json.Marshal(rec)
}

// AppendStaged appends records returned by Stage, in order, and returns
// once all are durable in the chain (one fsync for the lot when they fit
// one batch). Unlike Append it waits as long as ctx allows, without
// Config.AppendTimeout: records given up on may still be written, so a
// caller must not append them again (the service's mover stops at the
// first error until restart). A record that does not decode or validate
// is an error and nothing is appended. errors: ErrInvalidRecord,
// ErrClosed, the trail's sticky failure, ctx's error.
func (t *Trail) AppendStaged(ctx context.Context, staged [][]byte) error {
	recs := make([]Record, len(staged))
	for i, b := range staged {
		if err := json.Unmarshal(b, &recs[i]); err != nil {
			return invalid("staged record %d: does not decode", i)
		}
		recs[i].Seq, recs[i].PrevHash, recs[i].Hash = 0, "", ""
		if err := t.prepare(&recs[i]); err != nil {
			return err
		}
	}
	return t.enqueue(ctx, recs)
}

// DetachedContext returns the context for appending the audit record of
// an event that happened: ctx's values without its cancellation or
// deadline (context.WithoutCancel), bounded by timeout (0 means
// DefaultAppendTimeout). Trail.Append does this itself; callers that
// append through another implementation of an appender interface use it
// so a client that goes away cannot cancel the record.
func DetachedContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		timeout = DefaultAppendTimeout
	}
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// Err returns nil while the trail accepts records, else why not: ErrClosed
// or the sticky ErrFailed (for a readiness check).
func (t *Trail) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	return t.err
}

// Last returns the seq and hash of the last durable record (0, "" for an
// empty trail).
func (t *Trail) Last() (seq uint64, hash string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastSeq, t.lastHsh
}

// Close writes what is queued, closes the segment file, releases the lock
// and stops the forwarders, giving them up to 5 s to deliver what they
// hold. Append after Close returns ErrClosed.
func (t *Trail) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		<-t.done
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	<-t.done
	var err error
	if t.f != nil {
		err = t.f.Close()
	}
	if t.lock != nil {
		t.lock.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, fw := range t.forwarders {
		fw.Close(ctx)
	}
	return err
}

func (t *Trail) writer() {
	defer close(t.done)
	for {
		<-t.wake
		for {
			t.mu.Lock()
			batch := t.queue
			t.queue = nil
			closed := t.closed
			failed := t.err
			t.mu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			if failed != nil {
				for _, p := range batch {
					p.done <- failed
				}
				continue
			}
			err := t.writeBatch(batch)
			if err != nil {
				err = fmt.Errorf("%w: %w", ErrFailed, err)
				t.mu.Lock()
				t.err = err
				t.mu.Unlock()
				t.cfg.Logger.Error("audit: trail write failed; further requests will be refused", "error", err.Error())
			} else {
				t.mu.Lock()
				t.lastSeq, t.lastHsh = t.seq, t.prev
				t.mu.Unlock()
			}
			for _, p := range batch {
				p.done <- err
			}
			if err == nil {
				for _, fw := range t.forwarders {
					for _, p := range batch {
						fw.Enqueue(p.rec)
					}
				}
			}
		}
	}
}

// writeBatch seals the batch's records, writes them (rotating segments by
// size) and fsyncs. On error the in-memory chain is left as it was.
func (t *Trail) writeBatch(batch []*pending) error {
	seq, prev := t.seq, t.prev
	var buf []byte
	size := t.segSize
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := t.f.Write(buf); err != nil {
			return fmt.Errorf("write %s: %w", segmentName(t.segNum), err)
		}
		t.segSize += int64(len(buf))
		buf = buf[:0]
		return nil
	}
	for _, p := range batch {
		p.rec.Seq = seq + 1
		p.rec.PrevHash = prev
		line, err := seal(t.mac, &p.rec)
		if err != nil {
			return err
		}
		if size > 0 && size+int64(len(line)) > t.cfg.MaxSegmentBytes {
			if err := flush(); err != nil {
				return err
			}
			if err := t.f.Sync(); err != nil {
				return fmt.Errorf("fsync %s: %w", segmentName(t.segNum), err)
			}
			if err := t.f.Close(); err != nil {
				return fmt.Errorf("close %s: %w", segmentName(t.segNum), err)
			}
			t.f = nil
			if err := t.openSegment(t.segNum + 1); err != nil {
				return err
			}
			size = 0
		}
		buf = append(buf, line...)
		size += int64(len(line))
		seq, prev = p.rec.Seq, p.rec.Hash
	}
	if err := flush(); err != nil {
		return err
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", segmentName(t.segNum), err)
	}
	t.seq, t.prev = seq, prev
	return nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
