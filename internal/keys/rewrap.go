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
	Objects   int            // encrypted objects found
	Rewrapped int            // headers rewritten (Rewrap)
	Plaintext int            // files without the envelope header (left as they are)
	ByKEK     map[string]int // objects (and the PHI key) per wrapping KEK id, after the operation
	Restored  int            // torn headers restored from the journal by recovery
}

// journal batch: records are fsynced before any of their headers is
// overwritten.
const journalBatch = 256

// Rewrap re-wraps, under ring's active KEK, the DEK of every encrypted
// object under <dataDir>/blobs and the PHI master key, rewriting only the
// HeaderSize-byte header of each object in place; bodies are not read.
// Objects already under the active KEK are skipped, so an interrupted
// Rewrap is finished by running it again.
//
// Crash safety. Before a batch of headers is overwritten, the old headers
// are appended to the undo journal (<data>/keys/rewrap.journal, each
// record with a SHA-256 checksum so a torn tail is ignored) and the
// journal is fsynced. Each header is then written with one pwrite at
// offset 0 and the file fsynced. After a crash a header is either the old
// one (opens with the old KEK, still in the ring), the new one (opens with
// the new KEK), or torn: a mix of both, which the GCM tag over the whole
// header rejects, and which Recover (run first by Rewrap, and by Open)
// replaces with the journaled old header. The journal is removed only
// after every header is durable. Retire then refuses to drop a KEK any
// object still names. The PHI key file is replaced by rename.
//
// Run it with no radflow process writing to the data directory (objects
// written meanwhile may still use the previous KEK; a second Rewrap
// catches them). errors: ErrUnknownKEK or ErrIntegrity for objects no key
// opens (the walk continues; the first such error is returned), I/O errors.
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
	type item struct {
		rel  string
		old  *header
		file *os.File
	}
	var batch []item
	var firstErr error
	closeAll := func() {
		for _, it := range batch {
			it.file.Close()
		}
		batch = batch[:0]
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
			if _, err := it.file.WriteAt(nh.raw[:], 0); err != nil {
				return fmt.Errorf("keys: rewriting header of %s: %w", it.rel, err)
			}
			if err := it.file.Sync(); err != nil {
				return fmt.Errorf("keys: fsync %s: %w", it.rel, err)
			}
			st.Rewrapped++
			st.ByKEK[ring.active]++
		}
		return nil
	}
	err = walkObjects(ctx, BlobDir(dataDir), func(rel, path string, h *header, herr error) error {
		if errors.Is(herr, ErrNotEncrypted) {
			st.Plaintext++
			return nil
		}
		if herr != nil {
			return herr
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
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		batch = append(batch, item{rel, h, f})
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
// back; then the journal is removed. Returns the number restored. A
// missing journal is a no-op. errors: I/O errors.
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
		path := filepath.Join(root, filepath.FromSlash(rel))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since
		}
		if err != nil {
			return restored, fmt.Errorf("keys: %w", err)
		}
		var cur [HeaderSize]byte
		_, rerr := io.ReadFull(f, cur[:])
		ok := false
		if rerr == nil {
			if h, err := parseHeader(cur[:]); err == nil {
				_, err = h.unwrap(ring)
				ok = err == nil
			}
		}
		if !ok {
			if _, err := f.WriteAt(old, 0); err != nil {
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

// walkObjects calls fn for every regular file under root except
// temporary ones (.tmp-*), with its parsed header or the parse error.
func walkObjects(ctx context.Context, root string, fn func(rel, path string, h *header, herr error) error) error {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var hb [HeaderSize]byte
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
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		_, rerr := io.ReadFull(f, hb[:])
		f.Close()
		if rerr != nil {
			return fn(filepath.ToSlash(rel), p, nil, ErrNotEncrypted)
		}
		h, herr := parseHeader(hb[:])
		return fn(filepath.ToSlash(rel), p, h, herr)
	})
}

// Inventory counts the objects under <dataDir>/blobs (and the PHI key)
// per wrapping KEK id. errors: ErrIntegrity for a damaged header, I/O.
func Inventory(ctx context.Context, dataDir string) (Stats, error) {
	st := Stats{ByKEK: map[string]int{}}
	err := walkObjects(ctx, BlobDir(dataDir), func(rel, _ string, h *header, herr error) error {
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
// reading every object header) that nothing under dataDir still uses it,
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
