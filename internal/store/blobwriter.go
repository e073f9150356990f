package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// BlobWriter writes a fresh blob while its bytes are still arriving
// (FS.NewBlobWriter). With a codec that is an ObjectDigester (keys.Codec)
// the plaintext is not hashed: the object digest is taken from the
// encoded bytes as they pass (BlobInfo.SHA256). Otherwise each Write
// passes the plaintext, 256 KiB at a time, to a goroutine that hashes it
// (SHA-256): a copy, or with WriteRetained the caller's bytes themselves.
// Write also encodes it
// through the codec into 4 KiB-aligned blocks, which are written to the
// device (O_DIRECT where the file system takes it) with one pwritev per
// MiB gathered, and the rest by Close. Package dimse feeds it the PDVs of
// a C-STORE data set as they are read off the connection: by the time the
// last byte is in, the plaintext is hashed and encrypted, and only the
// write of the last MiB and the fsync are left (C-STORE over one
// association on two cores: 195 → 221 instances/s with the hash on the
// same goroutine, and receiving a 0.5 MB data set 0.83 → 0.54 ms with it
// on its own; see docs/operations.md, Performance).
//
// Use: Write the bytes in order, then Close (bytes written, durable later
// through the returned sync) or Abort (nothing left). Not safe for
// concurrent use.
type BlobWriter struct {
	key       string
	path, dir string
	file      *os.File
	direct    bool // the file is open with O_DIRECT
	// pack: the blob goes into this pack from base (see pack.go) instead
	// of a file of its own; the pack is this writer's until Close or Abort.
	pack  *packFile
	base  int64
	fileN int64 // encoded bytes passed to out
	// cover: the FS covers this pack's syncs (FS.CoverSyncs); mustSync: a
	// write to the pack was not flushOnly, so Close's sync must fdatasync.
	cover, mustSync bool
	// nameWithFile: the file's fsync makes its name durable (FS.nameWithFile)
	nameWithFile bool
	// syncFree: Close's sync does no I/O (SyncFree)
	syncFree bool

	// The SHA-256 runs on its own goroutine (hashBlocks) while Write
	// encrypts: on two cores the sender's PDVs then arrive about as fast
	// as one of the two keeps up, instead of waiting for both in turn.
	hcur    *[]byte // plaintext block being filled for the hasher (pooled)
	hcurLen int
	hbatch  []block      // plaintext not yet handed over: full pooled blocks, retained slices
	hbatchN int          // bytes in hbatch
	hblocks chan []block // to the hasher
	hsum    chan []byte  // the digest, once hblocks is closed
	hsent   bool

	enc io.WriteCloser // the codec's encoder over sink, nil without a codec
	// od: the codec is an ObjectDigester; the encoded bytes go through it
	// and there is no hasher (hblocks nil).
	od digestWriter
	n  int64 // plaintext bytes written

	cur     *[]byte // aligned block being filled (pooled), nil before the first byte
	curLen  int
	pending []block // full blocks not yet written, from file offset off
	off     int64
	err     error // sticky
	done    bool  // Close or Abort called
}

// block is a piece of the file's bytes or of the plaintext: b is bp's
// (pooled) memory, or with bp nil the caller's (WriteRetained).
type block struct {
	bp *[]byte
	b  []byte
}

const (
	// blobBlockSize is the unit BlobWriter gathers bytes in: a multiple
	// of directAlign.
	blobBlockSize = 64 << 10
	// hashBatch blocks' worth of plaintext is handed to the hasher at once
	// (256 KiB: three hand-overs for a 0.5 MB CT slice, the last at Close,
	// not nine).
	hashBatch = 4
	// writeBatch blocks are written at once (1 MiB): the write of a
	// 0.5 MB CT slice is one pwritev, at Close; a large data set is
	// written as it arrives, holding at most 1 MiB. (A goroutine writing
	// each block as it filled had not been scheduled before Close
	// anyway: on two cores the sender, the reader and the hasher keep
	// both busy while a data set arrives.)
	writeBatch = 16
)

// blobBlocks recycles BlobWriter's blocks (with directAlign of slack in
// front, see alignedBuffer).
var blobBlocks = sync.Pool{New: func() any { b := make([]byte, 0, blobBlockSize+directAlign); return &b }}

// NewBlobWriter creates the file for key, which must not exist yet
// (errors: a wrapped fs.ErrExist), and returns a writer for its bytes.
// Nothing may reference key until Close's sync has returned nil. In a
// store that packs blobs (see pack.go) the writer takes a pack for itself
// until Close or Abort and writes at its end; key is not used: Close's
// info.Key names the region.
// errors: ErrInvalidKey, ctx's error, I/O errors.
func (f *FS) NewBlobWriter(ctx context.Context, key string) (*BlobWriter, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: writing blob: %w", err)
	}
	var w *BlobWriter
	if f.packs != nil {
		pk, err := f.packs.acquire()
		if err != nil {
			return nil, err
		}
		w = &BlobWriter{pack: pk, file: pk.file, base: pk.reserve(0), cover: f.covers(pk)}
	} else {
		dir := filepath.Dir(p)
		if err := f.mkdirDurable(dir); err != nil {
			return nil, err
		}
		file, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return nil, fmt.Errorf("store: creating blob file: %w", err)
		}
		w = &BlobWriter{key: key, path: p, dir: dir, file: file, nameWithFile: f.nameWithFile, direct: directIO(file, true)}
	}
	if od, ok := f.codec.(ObjectDigester); ok {
		w.od = od.NewObjectDigest()
	} else {
		w.hblocks, w.hsum = make(chan []block, 16), make(chan []byte, 1)
		go w.hashBlocks()
	}
	if f.codec != nil {
		if w.enc, err = f.codec.Encode(sinkWriter{w}); err == nil {
			err = w.err
		}
		if err != nil {
			w.Abort()
			return nil, fmt.Errorf("store: blob codec: %w", err)
		}
	}
	return w, nil
}

// Write hashes and encodes p and writes the encoded bytes once a MiB is
// gathered; p is not kept. An error is sticky (Close returns it too).
func (w *BlobWriter) Write(p []byte) (int, error) {
	return w.write(p, false)
}

// WriteRetained is Write for bytes the caller keeps unchanged until Close
// or Abort has returned: the hasher reads p itself instead of a copy
// (package dimse's spool holds a C-STORE data set that way; the copy had
// been 3.5 % of radflow's CPU in C-STORE over four associations).
func (w *BlobWriter) WriteRetained(p []byte) (int, error) {
	return w.write(p, true)
}

func (w *BlobWriter) write(p []byte, retained bool) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("store: blob writer closed")
	}
	switch {
	case w.hblocks == nil: // the object digest instead (od), taken in out
	case retained:
		w.hashRetained(p)
	default:
		w.hashOut(p)
	}
	w.n += int64(len(p))
	if w.enc != nil {
		if _, err := w.enc.Write(p); err != nil {
			w.fail(fmt.Errorf("store: blob codec: %w", err))
			return 0, w.err
		}
	} else {
		w.out(p)
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// hashOut copies p into the hasher's blocks, handing them over hashBatch
// at a time.
func (w *BlobWriter) hashOut(p []byte) {
	for len(p) > 0 {
		if w.hcur == nil {
			w.hcur = blobBlocks.Get().(*[]byte)
			w.hcurLen = 0
		}
		b := (*w.hcur)[:blobBlockSize]
		k := copy(b[w.hcurLen:], p)
		w.hcurLen += k
		p = p[k:]
		if w.hcurLen == blobBlockSize {
			w.hashAppend(block{bp: w.hcur, b: b})
			w.hcur = nil
		}
	}
}

// hashRetained hands p itself to the hasher, after the plaintext copied
// before it.
func (w *BlobWriter) hashRetained(p []byte) {
	if len(p) == 0 {
		return
	}
	if w.hcur != nil {
		w.hashAppend(block{bp: w.hcur, b: (*w.hcur)[:w.hcurLen]})
		w.hcur = nil
	}
	w.hashAppend(block{b: p})
}

// hashAppend adds b to the batch for the hasher and hands the batch over
// once it holds hashBatch blocks' worth.
func (w *BlobWriter) hashAppend(b block) {
	w.hbatch = append(w.hbatch, b)
	w.hbatchN += len(b.b)
	if w.hbatchN >= hashBatch*blobBlockSize {
		w.hblocks <- w.hbatch
		w.hbatch, w.hbatchN = nil, 0
	}
}

// hashBlocks hashes the handed-over plaintext blocks in order and sends
// the digest on hsum once hblocks is closed.
func (w *BlobWriter) hashBlocks() {
	h := sha256.New()
	for batch := range w.hblocks {
		for _, blk := range batch {
			h.Write(blk.b)
			if blk.bp != nil {
				blobBlocks.Put(blk.bp)
			}
		}
	}
	w.hsum <- h.Sum(nil)
}

// hashStop hands over the last plaintext and returns the digest (nil when
// already stopped).
func (w *BlobWriter) hashStop() []byte {
	if w.hsent || w.hblocks == nil {
		return nil
	}
	w.hsent = true
	if w.hcur != nil {
		w.hbatch = append(w.hbatch, block{bp: w.hcur, b: (*w.hcur)[:w.hcurLen]})
		w.hcur = nil
	}
	if len(w.hbatch) > 0 {
		w.hblocks <- w.hbatch
		w.hbatch, w.hbatchN = nil, 0
	}
	close(w.hblocks)
	return <-w.hsum
}

// sinkWriter is the codec encoder's destination: the file's bytes.
type sinkWriter struct{ w *BlobWriter }

func (s sinkWriter) Write(p []byte) (int, error) {
	s.w.out(p)
	if s.w.err != nil {
		return 0, s.w.err
	}
	return len(p), nil
}

// out appends file bytes to the current block; full blocks are written
// writeBatch at a time.
func (w *BlobWriter) out(p []byte) {
	w.fileN += int64(len(p))
	if w.od != nil {
		w.od.Write(p)
	}
	for len(p) > 0 && w.err == nil {
		if w.cur == nil {
			w.cur = blobBlocks.Get().(*[]byte)
			w.curLen = 0
		}
		b := alignedBuffer(w.cur, blobBlockSize)[:blobBlockSize]
		k := copy(b[w.curLen:], p)
		w.curLen += k
		p = p[k:]
		if w.curLen == blobBlockSize {
			w.pending = append(w.pending, block{bp: w.cur, b: b})
			w.cur = nil
			if len(w.pending) == writeBatch {
				w.flush()
			}
		}
	}
}

// flush writes the pending blocks with one pwritev and recycles them.
func (w *BlobWriter) flush() {
	if len(w.pending) == 0 {
		return
	}
	if w.err == nil {
		iovs := make([][]byte, len(w.pending))
		n := 0
		for i, b := range w.pending {
			iovs[i] = b.b
			n += len(b.b)
		}
		var err error
		if w.pack != nil {
			var flushOnly bool
			flushOnly, err = w.pack.write(iovs, w.base+w.off)
			w.mustSync = w.mustSync || !flushOnly
		} else {
			w.direct, err = writeVec(w.file, iovs, w.off, w.direct)
		}
		if err != nil {
			w.fail(fmt.Errorf("store: writing blob: %w", err))
		}
		w.off += int64(n)
	}
	w.release()
}

// release recycles the pending blocks (not cur: Close moves it into
// pending first, Abort recycles it itself).
func (w *BlobWriter) release() {
	for _, b := range w.pending {
		blobBlocks.Put(b.bp)
	}
	w.pending = w.pending[:0]
}

// fail records the first error.
func (w *BlobWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Close finishes the blob: the codec's last chunk, then what is not
// written yet. It returns the plaintext size and SHA-256 and sync, which
// must be called exactly once: it fsyncs the file (and its directory,
// concurrently, where the file system needs it) and closes the file (on
// error it removes the file; a failed directory fsync may leave it:
// delete the key). On error nothing is left. In a pack (see pack.go)
// info.Key names the region; sync fdatasyncs the pack (shared with the
// blobs synced meanwhile); on error the region is given back with its
// first block zeroed and the pack sealed. errors: the first write or
// codec error, I/O errors.
func (w *BlobWriter) Close() (info BlobInfo, sync func() error, err error) {
	if w.done {
		return BlobInfo{}, nil, errors.New("store: blob writer closed")
	}
	if w.enc != nil && w.err == nil {
		if cerr := w.enc.Close(); cerr != nil {
			w.fail(fmt.Errorf("store: blob codec: %w", cerr))
		}
	}
	if w.cur != nil {
		n := w.curLen
		if w.pack != nil { // regions are padded to the alignment: all O_DIRECT
			n = int(alignUp(int64(n)))
		}
		b := alignedBuffer(w.cur, blobBlockSize)[:n]
		clear(b[w.curLen:])
		w.pending = append(w.pending, block{bp: w.cur, b: b})
		w.cur = nil
	}
	w.flush()
	w.done = true
	sum := w.hashStop()
	if w.pack != nil {
		return w.closePack(sum)
	}
	if w.err != nil {
		w.file.Close()
		os.Remove(w.path)
		return BlobInfo{}, nil, w.err
	}
	info = BlobInfo{Key: w.key, Size: w.n, SHA256: w.digest(sum)}
	wr := &written{file: w.file, path: w.path, dir: w.dir, mode: putInPlaceDurable, info: info, nameWithFile: w.nameWithFile}
	return info, func() error { return wr.finish(context.Background()) }, nil
}

// digest is BlobInfo.SHA256: the object digest, or the plaintext's sum.
func (w *BlobWriter) digest(sum []byte) string {
	if w.od != nil {
		return w.od.Digest()
	}
	return hex.EncodeToString(sum)
}

// SyncFree reports, after a successful Close, that its sync does no I/O
// and returns at once: the blob was written into zero-filled space of a
// pack whose syncs the FS covers (FS.CoverSyncs). Package ingest then
// calls it in line instead of on a goroutine of its own.
func (w *BlobWriter) SyncFree() bool { return w.syncFree }

// closePack ends a pack writer's Close: the region becomes the pack's
// (its end moves past it) and the pack goes back for the next writer; the
// returned sync fdatasyncs it (packFile.sync).
func (w *BlobWriter) closePack(sum []byte) (BlobInfo, func() error, error) {
	pk := w.pack
	w.pack = nil
	if w.err != nil {
		w.zeroHead(pk)
		pk.release(true) // what the failed write left is not known
		pk.unref()
		return BlobInfo{}, nil, w.err
	}
	if off := pk.reserve(w.fileN); off != w.base { // cannot happen: the pack is this writer's
		pk.release(true)
		pk.unref()
		return BlobInfo{}, nil, fmt.Errorf("store: pack %d: end moved from %d to %d under its writer", pk.id, w.base, off)
	}
	pk.release(false)
	info := BlobInfo{Key: packKey(pk.id, w.base, w.fileN), Size: w.n, SHA256: w.digest(sum)}
	if w.cover && !w.mustSync {
		w.syncFree = true
		return info, func() error {
			defer pk.unref()
			return pk.covered()
		}, nil
	}
	return info, func() error {
		defer pk.unref()
		return pk.sync()
	}, nil
}

// zeroHead zeroes the first block of a pack region given up after bytes
// were written to it: with the codec's header (its wrapped key) gone,
// what was written can no longer be read (nor counted as an object by
// keys.Inventory), before the next writer overwrites it or after a crash.
// Best effort after a failed write (the pack is sealed anyway).
func (w *BlobWriter) zeroHead(pk *packFile) {
	if w.off == 0 {
		return
	}
	if _, err := pk.write([][]byte{zeroPage}, w.base); err != nil {
		w.fail(err)
	}
}

// Abort stops the writer and removes the file (gives a pack region back
// unused, its first block zeroed when written). It may be called after a failed Close, or more than once.
func (w *BlobWriter) Abort() {
	w.hashStop()
	if w.cur != nil {
		blobBlocks.Put(w.cur)
		w.cur = nil
	}
	w.release()
	if !w.done {
		w.done = true
		if w.pack != nil {
			w.zeroHead(w.pack)
			w.pack.release(w.err != nil)
			w.pack.unref()
			w.pack = nil
			return
		}
		w.file.Close()
		os.Remove(w.path)
	}
}
