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
	"syscall"
)

// BlobWriter writes a fresh blob while its bytes are still arriving
// (FS.NewBlobWriter). Each Write passes a copy of the plaintext to a
// goroutine that hashes it (SHA-256), encodes it through the codec, and
// hands every full block of the file's bytes to another goroutine that
// writes it to the device (O_DIRECT where the file system takes it) while
// the next bytes arrive. Package dimse feeds it the PDVs of a C-STORE
// data set as they are read off the connection, so that once the last
// byte is in, only what the device has not written yet and the fsync are
// left to wait for (C-STORE over one association on two cores: 195 → 221
// instances/s; see docs/operations.md, Performance).
//
// Use: Write the bytes in order, then Close (bytes written, durable later
// through the returned sync) or Abort (nothing left). Not safe for
// concurrent use.
type BlobWriter struct {
	key       string
	path, dir string
	file      *os.File
	direct    bool // the file is open with O_DIRECT
	// nameWithFile: the file's fsync makes its name durable (FS.nameWithFile)
	nameWithFile bool

	// The SHA-256 runs on its own goroutine (hashBlocks), over copies of
	// the plaintext in blobBlockSize pieces, while Write encrypts: on two
	// cores the sender's PDVs then arrive about as fast as one of the two
	// keeps up, instead of waiting for both one after the other.
	hcur    *[]byte // plaintext block being filled for the hasher (pooled)
	hcurLen int
	hblocks chan block
	hsum    chan []byte // the digest, once hblocks is closed
	hsent   bool
	enc  io.WriteCloser // the codec's encoder over sink, nil without a codec
	n    int64          // plaintext bytes written

	cur    *[]byte // aligned block being filled (pooled), nil before the first byte
	curLen int
	off    int64 // file offset of cur
	blocks chan block
	werr   chan error // the write goroutine's result, once blocks is closed
	sent   bool       // blocks closed
	err    error      // sticky
	done   bool       // Close or Abort called
}

// block is a piece of the file's bytes for the write goroutine.
type block struct {
	bp  *[]byte
	b   []byte
	off int64
}

// blobBlockSize is how many file bytes a BlobWriter gathers before it
// queues them for the device: a multiple of directAlign. The first write
// of a 0.5 MB CT slice starts once its first 64 KiB are in.
const blobBlockSize = 64 << 10

// blobBlocks recycles BlobWriter's aligned blocks (with directAlign of
// slack in front, see alignedBuffer).
var blobBlocks = sync.Pool{New: func() any { b := make([]byte, 0, blobBlockSize+directAlign); return &b }}

// NewBlobWriter creates the file for key, which must not exist yet
// (errors: a wrapped fs.ErrExist), and returns a writer for its bytes.
// Nothing may reference key until Close's sync has returned nil.
// errors: ErrInvalidKey, ctx's error, I/O errors.
func (f *FS) NewBlobWriter(ctx context.Context, key string) (*BlobWriter, error) {
	p, err := f.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: writing blob: %w", err)
	}
	dir := filepath.Dir(p)
	if err := f.mkdirDurable(dir); err != nil {
		return nil, err
	}
	file, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("store: creating blob file: %w", err)
	}
	w := &BlobWriter{key: key, path: p, dir: dir, file: file, nameWithFile: f.nameWithFile,
		hblocks: make(chan block, 64), hsum: make(chan []byte, 1),
		blocks: make(chan block, 64), werr: make(chan error, 1)}
	w.direct = directIO(file, true)
	go w.writeBlocks()
	go w.hashBlocks()
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

// Write hashes and encodes p and queues the encoded bytes for the file;
// p is not kept. An error is sticky (Close returns it too).
func (w *BlobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("store: blob writer closed")
	}
	w.hashOut(p)
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

// hashOut copies p into the hasher's blocks, queueing each full one.
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
			w.hblocks <- block{bp: w.hcur, b: b}
			w.hcur = nil
		}
	}
}

// hashBlocks hashes the queued plaintext blocks in order and sends the
// digest on hsum once hblocks is closed.
func (w *BlobWriter) hashBlocks() {
	h := sha256.New()
	for blk := range w.hblocks {
		h.Write(blk.b)
		blobBlocks.Put(blk.bp)
	}
	w.hsum <- h.Sum(nil)
}

// hashStop queues the last plaintext block and returns the digest.
func (w *BlobWriter) hashStop() []byte {
	if w.hsent {
		return nil
	}
	w.hsent = true
	if w.hcur != nil {
		w.hblocks <- block{bp: w.hcur, b: (*w.hcur)[:w.hcurLen]}
		w.hcur = nil
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

// out appends file bytes to the current block, queueing each full one.
func (w *BlobWriter) out(p []byte) {
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
			w.queue(b)
		}
	}
}

// queue hands the current block (b, its first curLen bytes) to the write
// goroutine.
func (w *BlobWriter) queue(b []byte) {
	w.blocks <- block{bp: w.cur, b: b[:w.curLen], off: w.off}
	w.off += int64(w.curLen)
	w.cur, w.curLen = nil, 0
}

// fail records the first error.
func (w *BlobWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// writeBlocks writes the queued blocks in order, each write taking every
// block queued by then (one pwritev: one request to the device, which
// costs about the same for 64 KiB as for 512 KiB, so the writes keep up
// with the bytes arriving however fast the device is). The first error
// stops the writes (later blocks are only recycled) and is reported on
// werr.
func (w *BlobWriter) writeBlocks() {
	var err error
	batch := make([]block, 0, 16)
	iovs := make([][]byte, 0, 16)
	for open := true; open; {
		blk, ok := <-w.blocks
		if !ok {
			break
		}
		batch = append(batch[:0], blk)
	drain:
		for len(batch) < 1024 {
			select {
			case b, ok := <-w.blocks:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, b)
			default:
				break drain
			}
		}
		if err == nil {
			iovs = iovs[:0]
			for _, b := range batch {
				iovs = append(iovs, b.b)
			}
			err = w.writeAt(iovs, batch[0].off)
		}
		for _, b := range batch {
			blobBlocks.Put(b.bp)
		}
	}
	w.werr <- err
}

// writeAt writes iovs one after the other at off. With O_DIRECT, a last
// one whose length is not aligned (only the blob's last block is partial)
// has its aligned head written directly and its tail through the page
// cache (writeTail); a device that refuses the alignment (EINVAL) turns
// O_DIRECT off for the rest of the file.
func (w *BlobWriter) writeAt(iovs [][]byte, off int64) error {
	if w.direct {
		last := iovs[len(iovs)-1]
		head := len(last) &^ (directAlign - 1)
		tail := last[head:]
		total := int64(0)
		for _, b := range iovs {
			total += int64(len(b))
		}
		direct := append([][]byte(nil), iovs...)
		direct[len(direct)-1] = last[:head]
		if head == 0 {
			direct = direct[:len(direct)-1]
		}
		err := error(nil)
		if len(direct) > 0 {
			err = writeAll(w.file, direct, off)
		}
		if err == nil {
			if len(tail) > 0 {
				w.direct = false
				return writeTail(w.file, tail, off+total-int64(len(tail)))
			}
			return nil
		}
		if !errors.Is(err, syscall.EINVAL) || !directIO(w.file, false) {
			return err
		}
		w.direct = false
	}
	return writeAll(w.file, iovs, off)
}

// writeAll is pwritev until every byte of iovs is written.
func writeAll(f *os.File, iovs [][]byte, off int64) error {
	iovs = append([][]byte(nil), iovs...) // advanced below, the caller's stay
	for len(iovs) > 0 {
		n, err := pwritev(f, iovs, off)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 && len(iovs) > 0 {
			k := min(n, len(iovs[0]))
			iovs[0] = iovs[0][k:]
			n -= k
			if len(iovs[0]) == 0 {
				iovs = iovs[1:]
			}
		}
	}
	return nil
}

// Close finishes the blob: the codec's last chunk, then the last block. It returns the plaintext size and SHA-256 and
// sync, which must be called exactly once: it fsyncs the file and its
// directory concurrently and closes the file (on error it removes the
// file; a failed directory fsync may leave it: delete the key). On error
// nothing is left. errors: the first write or codec error, I/O errors.
func (w *BlobWriter) Close() (info BlobInfo, sync func() error, err error) {
	if w.done {
		return BlobInfo{}, nil, errors.New("store: blob writer closed")
	}
	if w.enc != nil && w.err == nil {
		if cerr := w.enc.Close(); cerr != nil {
			w.fail(fmt.Errorf("store: blob codec: %w", cerr))
		}
	}
	if w.err == nil && w.cur != nil {
		b := alignedBuffer(w.cur, blobBlockSize)[:blobBlockSize]
		w.queue(b)
	}
	if err := w.stop(); err != nil {
		w.fail(fmt.Errorf("store: writing blob: %w", err))
	}
	w.done = true
	sum := w.hashStop()
	if w.err != nil {
		w.file.Close()
		os.Remove(w.path)
		return BlobInfo{}, nil, w.err
	}
	info = BlobInfo{Key: w.key, Size: w.n, SHA256: hex.EncodeToString(sum)}
	wr := &written{file: w.file, path: w.path, dir: w.dir, mode: putInPlaceDurable, info: info, nameWithFile: w.nameWithFile}
	return info, func() error { return wr.finish(context.Background()) }, nil
}

// stop closes the block queue and waits for the write goroutine.
func (w *BlobWriter) stop() error {
	if w.sent {
		return nil
	}
	w.sent = true
	close(w.blocks)
	return <-w.werr
}

// Abort stops the writer and removes the file. It may be called after a
// failed Close, or more than once.
func (w *BlobWriter) Abort() {
	w.hashStop()
	if w.cur != nil {
		blobBlocks.Put(w.cur)
		w.cur = nil
	}
	_ = w.stop()
	if !w.done {
		w.done = true
		w.file.Close()
		os.Remove(w.path)
	}
}
