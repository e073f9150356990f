package keys

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// encryptTempPrefix names EncryptExisting's temporary files; they start
// with ".tmp-" so that walks over the blob store (walkObjects, the store's
// orphan sweep) skip them.
const encryptTempPrefix = ".tmp-encrypt-"

// ExpectedHash returns the SHA-256 (lowercase hex) recorded for the blob
// key (slash-separated, relative to <data>/blobs) in the metadata store;
// ok is false when no row references the key (the blob is then encrypted
// without a check).
type ExpectedHash func(ctx context.Context, key string) (sha256Hex string, ok bool, err error)

// EncryptStats is what EncryptExisting did. Key lists hold blob keys
// (relative paths), which carry no PHI (dates and hashed UIDs only).
type EncryptStats struct {
	Encrypted        int      // plaintext blobs encrypted by this run
	Verified         int      // of those, the ones whose plaintext SHA-256 matched their row
	Unverified       int      // of those, the ones no row references (encrypted unchecked)
	AlreadyEncrypted int      // blobs that already carried the envelope header, and objects in pack files (skipped)
	TempRemoved      int      // temporary files of an interrupted run, removed
	Mismatched       []string // plaintext SHA-256 differs from the row: left as they are
	Damaged          []string // start with the envelope magic but have no valid header (in a pack: "packs/NAME.pack@OFFSET"): left as they are
}

// EncryptExisting encrypts, under ring's active KEK, every plaintext blob
// under <dataDir>/blobs (one written before encryption at rest was on: a
// file that does not start with the envelope magic, e.g. a Part 10 file
// with its 128-byte preamble and "DICM", or a bare data set). Blobs that
// already carry the envelope header are skipped, so running it again is a
// no-op and finishes an interrupted run. Pack files (packs/*.pack, see
// walkObjects) hold only encrypted objects: each of their objects counts
// as AlreadyEncrypted (a damaged header as Damaged), and a pack file is
// never rewritten, renamed or removed.
//
// Per blob: the plaintext is read once, hashed (SHA-256) and encrypted
// into a temporary file in the blob's directory (".tmp-encrypt-*", mode
// copied), which is fsynced; when expected knows the key and the hash
// differs from the recorded one the temporary file is removed and the key
// is listed in Mismatched. The temporary file is then decoded again and
// its plaintext hash compared (a failure aborts the run before anything is
// replaced), renamed over the blob, and the directory fsynced. A crash
// therefore leaves each blob either the old plaintext or the complete
// encrypted object, never a torn file; leftover temporary files are
// removed at the start of the next run (TempRemoved).
//
// The caller must make sure no radflow process uses the data directory
// (see LockDataDir). expected may be nil. errors: ErrUnknownKEK/ErrKeyring
// for a ring without a usable active key, ErrIntegrity when the re-read
// check fails, expected's errors, I/O errors; the stats count what was
// done up to the error.
func EncryptExisting(ctx context.Context, dataDir string, ring *Keyring, expected ExpectedHash, log *slog.Logger) (EncryptStats, error) {
	var st EncryptStats
	if log == nil {
		log = slog.Default()
	}
	if _, err := ring.key(ring.active); err != nil {
		return st, err
	}
	codec := NewCodec(ring)
	root := BlobDir(dataDir)
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	// Pass 1: remove what an interrupted run left behind.
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// (A pack file's name never has the prefix; packs are never removed.)
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), encryptTempPrefix) && !strings.HasSuffix(d.Name(), packSuffix) {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("keys: removing leftover temporary file: %w", err)
			}
			st.TempRemoved++
			return syncDir(filepath.Dir(p))
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	// Pass 2: encrypt.
	err = walkObjects(ctx, root, func(key, p string, _ int64, _ *header, herr error) error {
		_, _, inPack := splitObjectRel(key) // never ErrNotEncrypted; checked anyway
		switch {
		case herr == nil:
			st.AlreadyEncrypted++
			return nil
		case inPack || !errors.Is(herr, ErrNotEncrypted) || startsWithMagic(p):
			log.Warn("keys: blob starts with the envelope magic but its header is damaged; left as it is", "key", key)
			st.Damaged = append(st.Damaged, key)
			return nil
		}
		var err error
		want, known := "", false
		if expected != nil {
			if want, known, err = expected(ctx, key); err != nil {
				return err
			}
		}
		done, err := encryptFile(p, codec, want, known)
		if err != nil {
			return fmt.Errorf("keys: encrypting %s: %w", key, err)
		}
		if !done {
			log.Warn("keys: plaintext SHA-256 differs from the recorded one; blob left unencrypted", "key", key)
			st.Mismatched = append(st.Mismatched, key)
			return nil
		}
		st.Encrypted++
		if known {
			st.Verified++
		} else {
			st.Unverified++
		}
		return nil
	})
	return st, err
}

// startsWithMagic reports whether the file at p, which walkObjects found
// too short for a header, begins with (a prefix of) the envelope magic: a
// truncated object, not plaintext.
func startsWithMagic(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [HeaderSize]byte
	n, _ := io.ReadFull(f, b[:])
	if n == 0 || n == HeaderSize {
		return false
	}
	m := min(n, len(magic))
	return bytes.Equal(b[:m], magic[:m])
}

// encryptFile replaces the plaintext file at p by its encryption (see
// EncryptExisting). It returns false, with the file untouched, when known
// and the plaintext's SHA-256 is not want.
func encryptFile(p string, codec *Codec, want string, known bool) (replaced bool, err error) {
	src, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return false, err
	}
	dir := filepath.Dir(p)
	tmp, err := os.CreateTemp(dir, encryptTempPrefix+"*")
	if err != nil {
		return false, err
	}
	defer func() {
		if !replaced {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		return false, err
	}
	bw := bufio.NewWriterSize(tmp, 256<<10)
	enc, err := codec.Encode(bw)
	if err != nil {
		return false, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(enc, h), src)
	if err != nil {
		return false, err
	}
	if err := enc.Close(); err != nil {
		return false, err
	}
	if err := bw.Flush(); err != nil {
		return false, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if known && !strings.EqualFold(sum, want) {
		return false, nil
	}
	if err := tmp.Sync(); err != nil {
		return false, fmt.Errorf("fsync: %w", err)
	}
	// Read the encrypted copy back before the plaintext goes.
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	dec, err := codec.Decode(bufio.NewReaderSize(tmp, 256<<10))
	if err != nil {
		return false, err
	}
	h2 := sha256.New()
	n2, err := io.Copy(h2, dec)
	if err != nil {
		return false, err
	}
	if n2 != n || hex.EncodeToString(h2.Sum(nil)) != sum {
		return false, fmt.Errorf("%w: encrypted copy does not read back as the plaintext", ErrIntegrity)
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return false, err
	}
	replaced = true
	return true, syncDir(dir)
}

// ErrInUse: another process holds the data directory (LockDataDir).
var ErrInUse = errors.New("keys: data directory in use")
