package keys

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrKEKInUse: Retire was asked to drop a KEK that still wraps an object
// or the PHI key.
var ErrKEKInUse = errors.New("keys: key-encryption key still in use")

// BlobDir returns the blob root of a data directory (package service's
// layout: <data>/blobs).
func BlobDir(dataDir string) string { return filepath.Join(dataDir, "blobs") }

// JournalPath returns the rewrap undo journal of a data directory.
func JournalPath(dataDir string) string { return filepath.Join(dataDir, "keys", "rewrap.journal") }

// Stats counts what a Rewrap or Inventory saw.
type Stats struct {
	Objects   int            // encrypted objects found (each object in a pack file counts)
	Rewrapped int            // headers rewritten (Rewrap)
	Plaintext int            // files without the envelope header (left as they are; never a pack file)
	ByKEK     map[string]int // objects (and the PHI key) per wrapping KEK id, after the operation
	Restored  int            // torn headers restored from the journal by recovery
}

// journal batch: records are fsynced before any of their headers is
// overwritten.
const journalBatch = 256

// Rewrap re-wraps, under ring's active KEK, the DEK of every encrypted
// object under <dataDir>/blobs (ordinary blobs and every object in the
// pack files, see walkObjects) and the PHI master key, rewriting only the
// HeaderSize-byte header of each object in place; bodies are never
// rewritten, and read only where the walk scans a pack file for headers.
// Objects already under the active KEK are skipped, so an interrupted
// Rewrap is finished by running it again.
//
// Crash safety. Before a batch of headers is overwritten, the old headers
// are appended to the undo journal (<data>/keys/rewrap.journal, each
// record with a SHA-256 checksum so a torn tail is ignored; a pack
// object's record names it "packs/NAME.pack@OFFSET") and the journal is
// fsynced. Each header is then written with one pwrite at the object's
// offset (0 for an ordinary blob), and each file written in the batch is
// fsynced once, before the next batch is journaled. After a crash a
// header is either the old one (opens with the old KEK, still in the
// ring), the new one (opens with the new KEK), or torn: a mix of both,
// which the GCM tag over the whole header rejects, and which Recover (run
// first by Rewrap, and by Open) replaces with the journaled old header.
// The journal is removed only after every header is durable. Retire then
// refuses to drop a KEK any object still names. The PHI key file is
// replaced by rename.
//
// Run it with no radflow process writing to the data directory (objects
// written meanwhile may still use the previous KEK; a second Rewrap
// catches them). errors: ErrUnknownKEK or ErrIntegrity for objects no key
// opens (the walk continues; the first such error is returned),
// ErrIntegrity for a damaged header (the walk stops), I/O errors.
func Rewrap(ctx context.Context, dataDir string, ring *Keyring, log *slog.Logger) (Stats, error) {
	if log == nil {
		log = slog.Default()
	}
	st := Stats{ByKEK: map[string]int{}}
	restored, err := Recover(dataDir, ring)
	st.Restored = restored
	if err != nil {
		return st, err
	}
	kek, err := ring.key(ring.active)
	if err != nil {
		return st, err
	}
	jpath := JournalPath(dataDir)
	if err := os.MkdirAll(filepath.Dir(jpath), 0o700); err != nil {
		return st, fmt.Errorf("keys: %w", err)
	}
	journal, err := os.OpenFile(jpath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return st, fmt.Errorf("keys: journal: %w", err)
	}
	defer journal.Close()
	// A batch's objects; each file is opened once per batch (a pack holds
	// many of them) and fsynced once after all of its headers are written.
	type item struct {
		rel  string
		off  int64
		old  *header
		file *os.File
	}
	type openFile struct {
		rel string // relative to the blob root
		f   *os.File
	}
	var batch []item
	files := map[string]*os.File{}
	var order []openFile // the batch's files in first-use order
	var firstErr error
	closeAll := func() {
		for _, o := range order {
			o.f.Close()
		}
		batch, order = batch[:0], order[:0]
		clear(files)
	}
	flush := func() error {
		defer closeAll()
		if len(batch) == 0 {
			return nil
		}
		jw := bufio.NewWriter(journal)
		for _, it := range batch {
			jw.Write(journalRecord(it.rel, it.old.raw[:]))
		}
		if err := jw.Flush(); err != nil {
			return fmt.Errorf("keys: journal: %w", err)
		}
		if err := journal.Sync(); err != nil {
			return fmt.Errorf("keys: journal fsync: %w", err)
		}
		for _, it := range batch {
			dek, err := it.old.unwrap(ring)
			if err != nil {
				return err
			}
			nh := &header{raw: it.old.raw}
			if err := nh.wrap(ring.active, kek, dek); err != nil {
				return err
			}
			if _, err := it.file.WriteAt(nh.raw[:], it.off); err != nil {
				return fmt.Errorf("keys: rewriting header of %s: %w", it.rel, err)
			}
		}
		for _, o := range order {
			if err := o.f.Sync(); err != nil {
				return fmt.Errorf("keys: fsync %s: %w", o.rel, err)
			}
		}
		st.Rewrapped += len(batch)
		st.ByKEK[ring.active] += len(batch)
		return nil
	}
	err = walkObjects(ctx, BlobDir(dataDir), func(rel, path string, off int64, h *header, herr error) error {
		if errors.Is(herr, ErrNotEncrypted) {
			st.Plaintext++
			return nil
		}
		if herr != nil {
			return fmt.Errorf("%s: %w", rel, herr)
		}
		st.Objects++
		if h.kekID == ring.active {
			st.ByKEK[h.kekID]++
			return nil
		}
		if _, err := h.unwrap(ring); err != nil {
			log.Warn("keys: object cannot be rewrapped", "key", rel, "kek_id", h.kekID, "err", err)
			st.ByKEK[h.kekID]++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", rel, err)
			}
			return nil
		}
		f := files[path]
		if f == nil {
			var err error
			if f, err = os.OpenFile(path, os.O_WRONLY, 0); err != nil {
				return fmt.Errorf("keys: %w", err)
			}
			files[path] = f
			file, _, _ := splitObjectRel(rel)
			order = append(order, openFile{file, f})
		}
		batch = append(batch, item{rel, off, h, f})
		if len(batch) >= journalBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	closeAll()
	if err != nil {
		return st, err // the journal stays for Recover
	}
	if changed, err := rewrapPHIKey(PHIKeyPath(dataDir), ring); err != nil {
		return st, err
	} else if id, _ := phiKEKID(PHIKeyPath(dataDir)); id != "" {
		st.ByKEK[id]++
		if changed {
			st.Rewrapped++
		}
	}
	journal.Close()
	if err := os.Remove(jpath); err != nil {
		return st, fmt.Errorf("keys: removing journal: %w", err)
	}
	if err := syncDir(filepath.Dir(jpath)); err != nil {
		return st, err
	}
	return st, firstErr
}

// journalRecord is len(rel) (2, big endian) ‖ rel ‖ header ‖
// SHA-256 of the preceding bytes.
func journalRecord(rel string, hdr []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(rel)))
	b = append(b, rel...)
	b = append(b, hdr...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// Recover finishes after a Rewrap that crashed: every journaled object
// whose header no longer authenticates (a torn write) gets its old header
// back, at offset 0 of its file or, for a record "packs/NAME.pack@OFFSET",
// at OFFSET in the pack (only where the pack still has the magic there);
// then the journal is removed. Returns the number restored. A missing
// journal is a no-op. errors: I/O errors.
func Recover(dataDir string, ring *Keyring) (int, error) {
	jpath := JournalPath(dataDir)
	b, err := os.ReadFile(jpath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("keys: journal: %w", err)
	}
	restored := 0
	root := BlobDir(dataDir)
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		size := 2 + n + HeaderSize + sha256.Size
		if len(b) < size {
			break // torn tail: its headers were never overwritten
		}
		rec := b[:size]
		b = b[size:]
		sum := sha256.Sum256(rec[:size-sha256.Size])
		if !bytes.Equal(sum[:], rec[size-sha256.Size:]) {
			break
		}
		rel := string(rec[2 : 2+n])
		old := rec[2+n : 2+n+HeaderSize]
		if strings.Contains(rel, "..") {
			continue
		}
		file, off, pack := splitObjectRel(rel)
		path := filepath.Join(root, filepath.FromSlash(file))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since
		}
		if err != nil {
			return restored, fmt.Errorf("keys: %w", err)
		}
		var cur [HeaderSize]byte
		_, rerr := f.ReadAt(cur[:], off)
		ok := false
		if rerr == nil {
			if h, err := parseHeader(cur[:]); err == nil {
				_, err = h.unwrap(ring)
				ok = err == nil
			}
		}
		// A torn header still starts with the magic (old and new headers
		// share their first 10 bytes); a pack object whose bytes no longer
		// do, or that the pack no longer reaches, is gone, and nothing is
		// written there.
		if pack && (rerr != nil || !bytes.Equal(cur[:len(magic)], magic[:])) {
			ok = true
		}
		if !ok {
			if _, err := f.WriteAt(old, off); err != nil {
				f.Close()
				return restored, fmt.Errorf("keys: restoring header of %s: %w", rel, err)
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return restored, fmt.Errorf("keys: fsync %s: %w", rel, err)
			}
			restored++
		}
		f.Close()
	}
	if err := os.Remove(jpath); err != nil {
		return restored, fmt.Errorf("keys: removing journal: %w", err)
	}
	return restored, syncDir(filepath.Dir(jpath))
}

// Pack files: besides one file per blob, package store appends encrypted
// objects into shared pack files, <blob root>/packs/NNNNNNNN.pack. Each
// object in a pack is one complete envelope object (header, then its
// STREAM chunks) starting at a multiple of packAlign; the bytes between
// and after objects are zeros or stale ciphertext of abandoned writes,
// which may itself still carry a whole header (it is then an object like
// any other). A pack object's blob key is "packs/NAME.pack@OFFSET+LENGTH";
// here an object is named "packs/NAME.pack@OFFSET" (packObjectRel).
const (
	packDir      = "packs"
	packSuffix   = ".pack"
	packAlign    = 4096
	packReadSize = 1 << 20 // a multiple of packAlign, so no header straddles two reads
)

// isPackRel reports whether rel (slash-separated, relative to the blob
// root) names a pack file: a file under packs/ whose name ends in ".pack".
func isPackRel(rel string) bool {
	return strings.HasPrefix(rel, packDir+"/") && strings.HasSuffix(rel, packSuffix)
}

// packObjectRel names the object at off in the pack file rel:
// "packs/NAME.pack@OFFSET" (decimal).
func packObjectRel(rel string, off int64) string {
	return rel + "@" + strconv.FormatInt(off, 10)
}

// splitObjectRel is the inverse of packObjectRel: the pack file's rel and
// the object's offset, with pack true. Any other rel (an ordinary blob,
// or a malformed offset) is returned as it is, at offset 0, pack false.
func splitObjectRel(rel string) (file string, off int64, pack bool) {
	i := strings.LastIndexByte(rel, '@')
	if i < 0 || !isPackRel(rel[:i]) {
		return rel, 0, false
	}
	off, err := strconv.ParseInt(rel[i+1:], 10, 64)
	if err != nil || off < 0 || off%packAlign != 0 {
		return rel, 0, false
	}
	return rel[:i], off, true
}

// objectFunc is walkObjects' callback, once per object: rel names it
// (slash-separated, relative to the blob root; "packs/NAME.pack@OFFSET"
// for an object in a pack), path is the file that holds it and off the
// object's offset in that file (0 for an ordinary blob). h is its parsed
// header, or herr the parse error: ErrNotEncrypted for an ordinary file
// that does not start with a whole header (plaintext, or an object
// truncated inside its header), ErrIntegrity for a damaged header. A pack
// object is never ErrNotEncrypted.
type objectFunc func(rel, path string, off int64, h *header, herr error) error

// walkObjects calls fn for every object under root: every regular file
// except temporary ones (.tmp-*) and pack files, and every object in a
// pack file (see scanPack). A pack file is never reported as one object.
// errors: fn's, ctx's, I/O errors.
func walkObjects(ctx context.Context, root string, fn objectFunc) error {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var hb [HeaderSize]byte
	var packBuf []byte
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		defer f.Close()
		if isPackRel(rel) {
			if packBuf == nil {
				packBuf = make([]byte, packReadSize)
			}
			return scanPack(ctx, f, rel, p, packBuf, fn)
		}
		_, rerr := io.ReadFull(f, hb[:])
		if rerr != nil {
			return fn(rel, p, 0, nil, ErrNotEncrypted)
		}
		h, herr := parseHeader(hb[:])
		return fn(rel, p, 0, h, herr)
	})
}

// scanPack reads the pack file f (rel, at path) sequentially in
// len(buf)-byte reads (a multiple of packAlign) and calls fn for every
// packAlign-aligned offset whose 8 bytes are the envelope magic, in file
// order; a header cut short by the end of the file is reported as
// ErrIntegrity. Other offsets (zeros, stale ciphertext) are skipped.
// errors: fn's, ctx's, I/O errors.
func scanPack(ctx context.Context, f *os.File, rel, path string, buf []byte, fn objectFunc) error {
	for base := int64(0); ; base += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(f, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("keys: reading %s: %w", rel, err)
		}
		b := buf[:n]
		for i := 0; i+len(magic) <= len(b); i += packAlign {
			if !bytes.Equal(b[i:i+len(magic)], magic[:]) {
				continue
			}
			off := base + int64(i)
			var h *header
			var herr error
			if len(b)-i < HeaderSize {
				herr = fmt.Errorf("%w: header truncated by the end of the pack", ErrIntegrity)
			} else {
				h, herr = parseHeader(b[i : i+HeaderSize])
			}
			if err := fn(packObjectRel(rel, off), path, off, h, herr); err != nil {
				return err
			}
		}
		if n < len(buf) {
			return nil
		}
	}
}

// Inventory counts the objects under <dataDir>/blobs (ordinary blobs and
// every object in the pack files, see walkObjects) and the PHI key per
// wrapping KEK id. errors: ErrIntegrity for a damaged header (named by
// its blob path, or "packs/NAME.pack@OFFSET"), I/O.
func Inventory(ctx context.Context, dataDir string) (Stats, error) {
	st := Stats{ByKEK: map[string]int{}}
	err := walkObjects(ctx, BlobDir(dataDir), func(rel, _ string, _ int64, h *header, herr error) error {
		switch {
		case errors.Is(herr, ErrNotEncrypted):
			st.Plaintext++
		case herr != nil:
			return fmt.Errorf("%s: %w", rel, herr)
		default:
			st.Objects++
			st.ByKEK[h.kekID]++
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	id, err := phiKEKID(PHIKeyPath(dataDir))
	if id != "" {
		st.ByKEK[id]++
	}
	return st, err
}

// Rotate generates a new KEK, makes it active in the keyring file at
// keyringFile (written atomically before any header changes, with the old
// keys kept), and rewraps everything under it (see Rewrap). It returns the
// new KEK id. errors: as LoadKeyring, Rewrap.
func Rotate(ctx context.Context, dataDir, keyringFile string, log *slog.Logger) (string, Stats, error) {
	ring, _, err := LoadKeyring(LoadOptions{File: keyringFile, Logger: log})
	if err != nil {
		return "", Stats{}, err
	}
	k := NewKEK()
	if err := ring.Add(k, true); err != nil {
		return "", Stats{}, err
	}
	if err := WriteKeyringFile(keyringFile, ring); err != nil {
		return "", Stats{}, err
	}
	st, err := Rewrap(ctx, dataDir, ring, log)
	return k.ID, st, err
}

// Retire removes the KEK id from the keyring file after checking (by
// reading every object header, those in pack files included, see
// Inventory) that nothing under dataDir still uses it,
// and that no rewrap journal is pending. errors: ErrKEKInUse, ErrKeyring
// (the active key), ErrUnknownKEK, I/O errors.
func Retire(ctx context.Context, dataDir, keyringFile, id string) error {
	ring, _, err := LoadKeyring(LoadOptions{File: keyringFile})
	if err != nil {
		return err
	}
	if id == ring.Active() {
		return fmt.Errorf("%w: cannot retire the active key %q", ErrKeyring, id)
	}
	if _, err := ring.key(id); err != nil {
		return err
	}
	if _, err := os.Stat(JournalPath(dataDir)); err == nil {
		return fmt.Errorf("%w: a rewrap journal is pending; run `radflow keys rewrap` first", ErrKEKInUse)
	}
	st, err := Inventory(ctx, dataDir)
	if err != nil {
		return err
	}
	if n := st.ByKEK[id]; n > 0 {
		return fmt.Errorf("%w: %q wraps %d objects; run `radflow keys rewrap` first", ErrKEKInUse, id, n)
	}
	if err := ring.Remove(id); err != nil {
		return err
	}
	return WriteKeyringFile(keyringFile, ring)
}
