package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Pack files. An FS whose codec is an AppendEncoder (encryption at rest:
// keys.Codec) writes fresh blobs (NewBlobWriter, PutNewBytes) into shared
// pack files instead of one file each: root/packs/NNNNNNNN.pack. A blob
// is a region of a pack: it starts at a multiple of directAlign and is
// padded with zeros to the next one, and its key names it:
// "packs/00000001.pack@<offset>+<length>" (decimal; length of the stored,
// encoded bytes). Open, Stat and Delete take such keys like any other.
//
// Why: a new file per instance cost the device a metadata write in every
// blob's fsync (the inode and the extents of the new blocks) and the
// kernel an inode allocation. Ahead of the writers, each pack is filled
// with zeros a packFill at a time and fdatasynced, on ext4 and XFS (the
// file systems where an overwrite of written blocks inside the file's size
// changes no metadata); a blob written there is made durable by an
// fdatasync that is only the device's cache flush, shared by the blobs
// written to the pack meanwhile (packFile.sync). A 0.5 MB blob's write
// and sync took 0.39-0.46 ms against 1.20-1.33 ms for a new file
// (0.16-0.18 against 0.48-0.55 ms of CPU), and zero-filling costs
// 0.86 ms of device time and 0.12 ms of CPU per MiB, in the background.
//
// Concurrency: a pack is handed to one streaming writer at a time
// (NewBlobWriter, whose size is not known until Close) or, for a moment,
// to PutNewBytes, which reserves its region at once and writes it later;
// idle packs wait in packSet.idle. A pack is never appended to after the
// process that wrote it stops (its end is not recorded anywhere but in
// memory): a restart starts new packs. The zero-filled space after the
// last blob of a pack is given back by Close (ftruncate), or after a
// crash by SweepPacks at the next start.
//
// Deleting a blob punches a hole over its region (FALLOC_FL_PUNCH_HOLE),
// which frees its blocks. A writer holds a flock on each of its packs
// until it stops; SweepPacks tidies the packs nobody holds: regions no
// row references (a blob written but never committed) are punched out.

const (
	packsDir = "packs"
	// packMax: a pack takes no new region once its end passes this.
	packMax = 1 << 30
	// packFill: bytes zero-filled ahead at a time, once less than packLow
	// is left after the pack's end (a 0.5 MB CT slice: a fill every 16
	// slices, 6-7 ms of the device's time, with 48-64 slices of margin).
	packFill = 8 << 20
	packLow  = 24 << 20
	// zeroChunk: one write of the zero fill.
	zeroChunk = 1 << 20
	// maxPackID: pack numbers have 8 digits.
	maxPackID = 99999999
	// packTempPrefix names a pack being created (see create).
	packTempPrefix = ".tmp-pack-"
)

var packKeyRE = regexp.MustCompile(`^packs/([0-9]{8})\.pack@(0|[1-9][0-9]{0,17})\+(0|[1-9][0-9]{0,17})$`)

// parsePackKey returns the pack file name, offset and length a pack key
// names; ok is false for any other key.
func parsePackKey(key string) (name string, off, n int64, ok bool) {
	m := packKeyRE.FindStringSubmatch(key)
	if m == nil {
		return "", 0, 0, false
	}
	off, err1 := strconv.ParseInt(m[2], 10, 64)
	n, err2 := strconv.ParseInt(m[3], 10, 64)
	if err1 != nil || err2 != nil || off%directAlign != 0 {
		return "", 0, 0, false
	}
	return m[1] + ".pack", off, n, true
}

// packID returns the number of a pack file's name ("00000001.pack").
func packID(name string) (int, bool) {
	if len(name) != 13 || !strings.HasSuffix(name, ".pack") {
		return 0, false
	}
	id, err := strconv.Atoi(name[:8])
	return id, err == nil && id >= 0
}

func packKey(id int, off, n int64) string {
	return fmt.Sprintf("packs/%08d.pack@%d+%d", id, off, n)
}

// zeroPage is directAlign zero bytes, aligned (read only).
var zeroPage = func() []byte {
	var bp []byte
	return alignedBuffer(&bp, directAlign)[:directAlign]
}()

func alignUp(n int64) int64 { return (n + directAlign - 1) &^ (directAlign - 1) }

// packSet is the pack files this process writes.
type packSet struct {
	dir  string
	fill bool // zero-fill ahead (ext4, XFS)

	mu     sync.Mutex
	idle   []*packFile
	all    map[*packFile]bool // open packs (idle, handed out, filling)
	nextID int
	closed bool

	fillq     chan *packFile
	fillDone  chan struct{}
	zeroBlock []byte // zeroChunk zeros, aligned
}

// packFile is one pack being written.
type packFile struct {
	set  *packSet
	id   int
	file *os.File
	// direct: file has O_DIRECT. It is read under wmu (read) by every
	// write and changed only under wmu (write), so that no write can be
	// in flight, believing it direct, while a fallback turns it off.
	wmu    sync.RWMutex
	direct bool
	// dev is the file's device (st_dev); dioOK: the file takes O_DIRECT
	// writes aligned to 4 KiB as such (statx STATX_DIOALIGN): both
	// conditions of FS.CoverSyncs.
	dev   uint64
	dioOK bool

	// under set.mu
	tail  int64 // end of the regions handed out (aligned)
	wrote int64 // end of the furthest write started
	ready int64 // bytes zero-filled and durable, from fillLo
	// fillLo: where the zero-filled, durable range that ends at ready
	// starts. A fill that starts past ready (a region was reserved and
	// not yet written when it began) leaves the space between unfilled.
	fillLo int64
	refs   int  // regions whose write or sync has not finished
	busy   bool // handed out to a writer: not in idle
	sealed bool // takes no new region (full, failed or closing)
	noFill bool // a zero fill failed
	// The zero fill: queued (filling) and then under way over
	// [fillFrom, fillTo) (fillActive); a write there waits for it (fillDone).
	filling, fillActive bool
	fillFrom, fillTo    int64
	fillDone            *sync.Cond

	// sync coalescing: requests covered up to done
	smu     sync.Mutex
	scond   *sync.Cond
	req     uint64
	done    uint64
	syncing bool
	serr    error // sticky: after a failed fdatasync nothing here is durable
}

// newPackSet scans root/packs for the highest pack number (new packs
// take the next ones: existing packs are never appended to).
func newPackSet(root string, fill bool) (*packSet, error) {
	dir := filepath.Join(root, packsDir)
	s := &packSet{dir: dir, fill: fill, all: map[*packFile]bool{}, nextID: 1}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: packs: %w", err)
	}
	for _, e := range ents {
		if id, ok := packID(e.Name()); ok && id >= s.nextID {
			s.nextID = id + 1
		}
	}
	return s, nil
}

// acquire hands out an idle pack (or a new one). The caller holds one
// reference (refs) until its region is durable or abandoned (unref), and
// the pack itself until release.
func (s *packSet) acquire() (*packFile, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("store: blob store closed")
	}
	for n := len(s.idle); n > 0 && s.idle[n-1].sealed; n-- { // (never: sealing takes a pack out)
		s.idle = s.idle[:n-1]
	}
	if n := len(s.idle); n > 0 {
		p := s.idle[n-1]
		s.idle = s.idle[:n-1]
		p.busy = true
		p.refs++
		s.mu.Unlock()
		return p, nil
	}
	s.mu.Unlock()

	var p *packFile
	for {
		// Another process sharing the blob root (radflow worker) may have
		// taken the number since the scan: take the next.
		s.mu.Lock()
		id := s.nextID
		s.nextID++
		s.mu.Unlock()
		var err error
		if p, err = s.create(id); err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		p.file.Close()
		return nil, errors.New("store: blob store closed")
	}
	s.all[p] = true
	p.busy = true
	p.refs++
	p.fillAheadLocked()
	return p, nil
}

// create makes pack id's file, locked from the moment its name exists
// and its name durable before any region in it is referenced. The file
// is created under a temporary name, flocked, then linked to its name
// (which fails with fs.ErrExist where another process took the number):
// SweepPacks in another process never finds the pack unlocked while this
// one writes it. errors: a wrapped fs.ErrExist, I/O errors.
func (s *packSet) create(id int) (*packFile, error) {
	if id > maxPackID {
		return nil, fmt.Errorf("store: creating pack: more than %d packs", maxPackID)
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: packs: %w", err)
	}
	f, err := os.CreateTemp(s.dir, packTempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("store: creating pack: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	fail := func(err error) (*packFile, error) {
		f.Close()
		return nil, fmt.Errorf("store: creating pack: %w", err)
	}
	// The flock marks the pack as written by a live process (SweepPacks
	// leaves it alone); the kernel drops it when the process dies. Where
	// the file system has no flock, SweepPacks cannot take one either and
	// leaves every pack alone.
	if err := lockFile(f); err != nil && !lockUnsupported(err) {
		return fail(err)
	}
	if err := os.Chmod(tmp, 0o640); err != nil {
		return fail(err)
	}
	name := filepath.Join(s.dir, fmt.Sprintf("%08d.pack", id))
	if err := os.Link(tmp, name); err != nil {
		return fail(err) // fs.ErrExist: the caller takes the next number
	}
	if err := os.Remove(tmp); err != nil {
		os.Remove(name)
		return fail(err)
	}
	err = f.Sync()
	if err == nil {
		err = syncDir(s.dir)
	}
	if err == nil {
		err = syncDir(filepath.Dir(s.dir))
	}
	if err != nil {
		os.Remove(name)
		return fail(err)
	}
	p := &packFile{set: s, id: id, file: f, direct: directIO(f, true)}
	p.dev, p.dioOK = fileDevice(f), directAligned(f)
	p.scond = sync.NewCond(&p.smu)
	p.fillDone = sync.NewCond(&s.mu)
	return p, nil
}

// reserve takes the region [off, off+alignUp(n)) at p's end; p stays
// handed out.
func (p *packFile) reserve(n int64) (off int64) {
	s := p.set
	s.mu.Lock()
	defer s.mu.Unlock()
	off = p.tail
	p.tail += alignUp(n)
	return off
}

// release gives p back after its writer is done with its end: back to
// the idle packs, or sealed when full or failed. When less than packLow
// of zero-filled space is left after its end, the next packFill is queued
// for the filler.
func (p *packFile) release(failed bool) {
	s := p.set
	s.mu.Lock()
	if s.closed && !failed && !p.sealed {
		// Close came while p was handed out: give its zero fill back now
		// (regions reserved below its end are kept).
		tail := p.tail
		p.sealed = true // busy still: nobody closes it meanwhile
		for p.fillActive {
			p.fillDone.Wait() // its zeros would land past the cut
		}
		s.mu.Unlock()
		_ = p.cutBack(tail)
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	p.busy = false
	if failed || p.sealed || p.tail >= packMax || s.closed {
		// (sealed: a failed fdatasync while it was handed out)
		p.sealed = true
		p.maybeCloseLocked()
		return
	}
	s.idle = append(s.idle, p)
	p.fillAheadLocked()
}

// fillAheadLocked queues p for the filler when little zero-filled space
// is left after its end.
func (p *packFile) fillAheadLocked() {
	s := p.set
	if !s.fill || p.noFill || p.filling || p.sealed || s.closed || p.ready-p.tail >= packLow {
		return
	}
	if s.fillq == nil {
		s.fillq = make(chan *packFile, 64)
		s.fillDone = make(chan struct{})
		go s.filler()
	}
	select {
	case s.fillq <- p:
		p.filling = true
	default: // the filler is behind; a later release asks again
	}
}

// unref drops a reference taken by acquire.
func (p *packFile) unref() {
	s := p.set
	s.mu.Lock()
	defer s.mu.Unlock()
	p.refs--
	p.maybeCloseLocked()
}

// maybeCloseLocked closes a sealed pack nobody uses any more, once the
// set is closing. Until then a sealed pack stays open, holding its flock:
// the rows of its last regions may still be committing, and SweepPacks
// in another process must not take it for a dead one.
func (p *packFile) maybeCloseLocked() {
	if p.set.closed && p.sealed && !p.busy && !p.fillActive && p.refs == 0 && p.set.all[p] {
		delete(p.set.all, p)
		p.file.Close()
	}
}

// filler zero-fills the packs queued by fillAheadLocked, packFill after
// everything written or handed out at a time, and fdatasyncs them. The
// pack stays in use meanwhile: only a write into the range being filled
// waits (packFile.write).
func (s *packSet) filler() {
	defer close(s.fillDone)
	for p := range s.fillq {
		s.mu.Lock()
		if s.closed || p.sealed {
			p.filling = false
			s.mu.Unlock()
			continue
		}
		from := max(p.ready, p.tail, alignUp(p.wrote))
		p.fillActive, p.fillFrom, p.fillTo = true, from, from+packFill
		s.mu.Unlock()
		err := p.zeroFill(from, from+packFill)
		s.mu.Lock()
		p.fillActive, p.filling = false, false
		if err != nil {
			p.noFill = true
		} else {
			if from != p.ready {
				p.fillLo = from
			}
			p.ready = from + packFill
		}
		p.fillDone.Broadcast()
		p.fillAheadLocked()
		p.maybeCloseLocked()
		s.mu.Unlock()
	}
}

// zeroFill writes zeros over [from, to) and fdatasyncs: afterwards an
// overwrite there changes no metadata (the blocks are allocated, written
// and inside the file's size).
func (p *packFile) zeroFill(from, to int64) error {
	s := p.set
	if s.zeroBlock == nil {
		var bp []byte
		s.zeroBlock = alignedBuffer(&bp, zeroChunk)[:zeroChunk]
	}
	for off := from; off < to; off += zeroChunk {
		if err := writeAll(p.file, [][]byte{s.zeroBlock}, off); err != nil {
			return err
		}
	}
	if err := packSync(p.file); err != nil {
		// It may have consumed a write-back error of a blob's bytes.
		p.fail(fmt.Errorf("store: fdatasync pack (zero fill): %w", err))
		return err
	}
	return nil
}

// packSyncHook, when set (tests), replaces fdatasync for packs.
var packSyncHook atomic.Pointer[func(*os.File) error]

// packSync is fdatasync of a pack file.
func packSync(f *os.File) error {
	if h := packSyncHook.Load(); h != nil {
		return (*h)(f)
	}
	return fdatasync(f)
}

// sync makes every region written to p before the call durable: one
// fdatasync covers the callers that came meanwhile. After a failed
// fdatasync every later sync fails too (nothing written to the pack can
// be trusted to be durable); the pack is sealed.
func (p *packFile) sync() error {
	p.smu.Lock()
	p.req++
	t := p.req
	for p.done < t && p.serr == nil {
		if p.syncing {
			p.scond.Wait()
			continue
		}
		p.syncing = true
		cover := p.req
		p.smu.Unlock()
		err := packSync(p.file)
		p.smu.Lock()
		p.syncing = false
		if err != nil {
			p.serr = fmt.Errorf("store: fdatasync pack: %w", err)
		}
		p.done = cover
		p.scond.Broadcast()
	}
	err := p.serr
	p.smu.Unlock()
	if err != nil {
		p.seal()
	}
	return err
}

// fail records err as the pack's sticky error, unless one is recorded
// already, and seals it: nothing written to the pack is trusted to be
// durable after a failed fdatasync on its file (Linux reports a
// write-back error once per open file, to whichever fdatasync comes
// first: the filler's, Close's or a writer's), or after a failed write.
func (p *packFile) fail(err error) {
	p.smu.Lock()
	if p.serr == nil {
		p.serr = err
	}
	p.smu.Unlock()
	p.seal()
}

// seal takes p out of service: no new region, out of the idle packs.
func (p *packFile) seal() {
	s := p.set
	s.mu.Lock()
	p.sealed = true
	if i := slices.Index(s.idle, p); i >= 0 {
		s.idle = append(s.idle[:i], s.idle[i+1:]...)
	}
	p.maybeCloseLocked()
	s.mu.Unlock()
}

// write writes the aligned buffers at off (O_DIRECT where the pack has
// it). Every buffer must start aligned and all lengths be multiples of
// directAlign. flushOnly reports that the bytes went to the device with
// O_DIRECT inside zero-filled space whose fill was fdatasynced (below
// ready): nothing but the device's write cache stands between them and
// the disk, so any later cache flush of the device makes them durable
// (FS.CoverSyncs).
func (p *packFile) write(iovs [][]byte, off int64) (flushOnly bool, err error) {
	var n int64
	for _, b := range iovs {
		n += int64(len(b))
	}
	s := p.set
	s.mu.Lock()
	for p.fillActive && off < p.fillTo && off+n > p.fillFrom {
		p.fillDone.Wait() // the filler's zeros must not land on these bytes
	}
	p.wrote = max(p.wrote, off+n)
	inFill := off >= p.fillLo && off+n <= p.ready
	s.mu.Unlock()
	// Regions are aligned and padded: a direct write needs no tail
	// through the page cache. Where the device refuses it (EINVAL), O_DIRECT
	// is turned off for the pack once no other write is in flight, and
	// the write is made through the page cache.
	p.wmu.RLock()
	direct := p.direct
	err = writeAll(p.file, iovs, off)
	p.wmu.RUnlock()
	if direct && errors.Is(err, syscall.EINVAL) {
		p.wmu.Lock()
		if p.direct && directIO(p.file, false) {
			p.direct = false
		}
		p.wmu.Unlock()
		p.wmu.RLock()
		direct = p.direct
		err = writeAll(p.file, iovs, off)
		p.wmu.RUnlock()
	}
	return err == nil && direct && inFill && p.dioOK, err
}

// coverable reports whether a sync of a region written flushOnly can be
// left to the fdatasync of a file on device dev (FS.CoverSyncs).
func (p *packFile) coverable(dev uint64) bool { return p.dev == dev }

// covered is sync for a region whose write was flushOnly while the FS
// covers syncs (FS.CoverSyncs): no fdatasync, only the pack's sticky
// error (a failed fdatasync or write of the pack before).
func (p *packFile) covered() error {
	p.smu.Lock()
	err := p.serr
	p.smu.Unlock()
	return err
}

// cutBack gives back the zero fill after tail, the end of p's last
// region (at Close), and fdatasyncs; a failed fdatasync is sticky (fail).
// A failed truncate leaves the fill (the sweep cuts it later).
func (p *packFile) cutBack(tail int64) error {
	if err := p.file.Truncate(tail); err != nil {
		return nil
	}
	if err := packSync(p.file); err != nil {
		p.fail(fmt.Errorf("store: fdatasync pack (close): %w", err))
		return err
	}
	return nil
}

// close stops the set: the filler ends, and every idle pack's file is cut
// back to its end (the zero fill after it given back), synced and
// closed. Packs still handed out are closed when their writers finish.
func (s *packSet) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	idle := s.idle
	s.idle = nil
	if s.fillq != nil {
		close(s.fillq)
	}
	done := s.fillDone
	s.mu.Unlock()
	if done != nil {
		<-done
	}
	var first error
	s.mu.Lock()
	for p := range s.all { // sealed earlier, kept open until now
		if p.sealed {
			p.maybeCloseLocked()
		}
	}
	s.mu.Unlock()
	for _, p := range idle {
		s.mu.Lock()
		tail := p.tail
		s.mu.Unlock()
		if err := p.cutBack(tail); err != nil && first == nil {
			first = fmt.Errorf("store: closing pack: %w", err)
		}
		s.mu.Lock()
		p.sealed = true
		p.maybeCloseLocked()
		s.mu.Unlock()
	}
	return first
}

// openPack opens the region a pack key names for reading.
func (f *FS) openPack(name string, off, n int64) (*os.File, io.Reader, error) {
	file, err := os.Open(filepath.Join(f.root, packsDir, name))
	if err != nil {
		return nil, nil, notFound(err)
	}
	return file, io.NewSectionReader(file, off, n), nil
}

// deletePack frees a pack region: a hole is punched over it (its blocks
// freed), or where the file system cannot, its first block is zeroed (the
// blob no longer decodes); then the pack is fdatasynced.
func (f *FS) deletePack(name string, off, n int64) error {
	file, err := os.OpenFile(filepath.Join(f.root, packsDir, name), os.O_RDWR, 0)
	if err != nil {
		return notFound(err)
	}
	defer file.Close()
	length := alignUp(n)
	if length == 0 {
		return nil
	}
	if err := punchHole(file, off, length); err != nil {
		if _, werr := file.WriteAt(make([]byte, min(length, directAlign)), off); werr != nil {
			return fmt.Errorf("store: deleting blob: %w", werr)
		}
	}
	if err := fdatasync(file); err != nil {
		return fmt.Errorf("store: deleting blob: %w", err)
	}
	return nil
}

// SweepPacks tidies the pack files no live process writes (none holds
// its flock) and none has modified for olderThan: what a crash or an
// abandoned write left in them. keys(ctx, prefix) returns the keys that
// rows reference starting with prefix ("packs/00000001.pack@"). In each
// such pack every region no row references (a blob written but never
// committed, a region given back) is punched out, the file is cut back
// after its last referenced region (the zero fill a crash left), and a
// pack no row references is removed. olderThan must exceed the longest
// ingest, as for RemoveOrphans. Returns the packs changed.
// errors: keys' errors, I/O errors.
func (f *FS) SweepPacks(ctx context.Context, olderThan time.Duration, keys func(ctx context.Context, prefix string) ([]string, error)) (int, error) {
	dir := filepath.Join(f.root, packsDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: packs: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	changed := 0
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return changed, err
		}
		name := e.Name()
		if strings.HasPrefix(name, packTempPrefix) && e.Type().IsRegular() {
			// A pack whose creation a crash interrupted (create): never
			// linked, so never written.
			if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) && os.Remove(filepath.Join(dir, name)) == nil {
				changed++
			}
			continue
		}
		if _, ok := packID(name); !ok || !e.Type().IsRegular() {
			continue
		}
		did, err := f.sweepPack(ctx, filepath.Join(dir, name), "packs/"+name+"@", cutoff, keys)
		if err != nil {
			return changed, err
		}
		if did {
			changed++
		}
	}
	return changed, nil
}

// sweepPack is SweepPacks for one pack file.
func (f *FS) sweepPack(ctx context.Context, path, prefix string, cutoff time.Time, keys func(ctx context.Context, prefix string) ([]string, error)) (bool, error) {
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("store: sweeping pack: %w", err)
	}
	defer file.Close()
	if err := tryLockFile(file); err != nil {
		return false, nil // a live process writes it (or locks do not work here)
	}
	fi, err := file.Stat()
	if err != nil {
		return false, fmt.Errorf("store: sweeping pack: %w", err)
	}
	if fi.ModTime().After(cutoff) {
		return false, nil
	}
	ks, err := keys(ctx, prefix)
	if err != nil {
		return false, err
	}
	type region struct{ off, end int64 }
	var rs []region
	for _, k := range ks {
		if _, off, n, ok := parsePackKey(k); ok && strings.HasPrefix(k, prefix) {
			rs = append(rs, region{off, off + alignUp(n)})
		}
	}
	if len(rs) == 0 {
		if err := os.Remove(path); err != nil {
			return false, fmt.Errorf("store: removing an unreferenced pack: %w", err)
		}
		return true, syncDir(filepath.Dir(path))
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].off < rs[j].off })
	changed := false
	var at int64
	for _, r := range rs {
		// Nothing references [at, r.off): punch it out unless it is a hole
		// already (a sweep at every start would otherwise punch the same
		// holes again and touch the pack's mtime each time).
		if r.off > at && hasData(file, at, r.off) {
			if err := punchHole(file, at, r.off-at); err == nil {
				changed = true
			}
		}
		at = max(at, r.end)
	}
	if fi.Size() > at {
		if err := file.Truncate(at); err != nil {
			return false, fmt.Errorf("store: sweeping pack: %w", err)
		}
		changed = true
	}
	if changed {
		if err := fdatasync(file); err != nil {
			return false, fmt.Errorf("store: sweeping pack: %w", err)
		}
	}
	return changed, nil
}
