package keys

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// BlindIndexSize is the length in bytes of a blind index before hex
// encoding (HMAC-SHA256 truncated to 128 bits; BlindIndex returns 32 hex
// digits).
const BlindIndexSize = 16

// fieldVersion is the first byte of every field ciphertext.
const fieldVersion = 1

// PHICipher encrypts PHI columns and computes their blind indexes with
// keys derived (HKDF-SHA256) from the PHI master key: per field name one
// AES-256-GCM key and one HMAC-SHA256 key. It implements package store's
// PHICipher. Safe for concurrent use.
type PHICipher struct {
	master []byte
	mu     sync.Mutex
	aeads  map[string]cipher.AEAD
	macs   map[string][]byte
}

// NewPHICipher returns a cipher over the 32-byte master key. errors:
// ErrKeyring (wrong length).
func NewPHICipher(master []byte) (*PHICipher, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("%w: PHI master key is %d bytes, want %d", ErrKeyring, len(master), KeySize)
	}
	return &PHICipher{master: append([]byte(nil), master...), aeads: map[string]cipher.AEAD{}, macs: map[string][]byte{}}, nil
}

func (p *PHICipher) derive(purpose, field string) []byte {
	k, err := hkdf.Key(sha256.New, p.master, nil, "radflow phi v1 "+purpose+" "+field, KeySize)
	if err != nil { // only for lengths HKDF cannot produce
		panic(err)
	}
	return k
}

func (p *PHICipher) aead(field string) (cipher.AEAD, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.aeads[field]; ok {
		return a, nil
	}
	a, err := newGCM(p.derive("enc", field))
	if err != nil {
		return nil, err
	}
	p.aeads[field] = a
	return a, nil
}

func (p *PHICipher) mac(field string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.macs[field]
	if !ok {
		k = p.derive("mac", field)
		p.macs[field] = k
	}
	return k
}

// Encrypt seals value with field's key and a random 96-bit nonce (so equal
// values give different ciphertexts), binding it to field and aad (e.g.
// the row's SOP Instance UID): ciphertext = version(1) ‖ nonce(12) ‖
// AES-256-GCM(value) ‖ tag(16); 29 bytes more than value.
func (p *PHICipher) Encrypt(field, value, aad string) ([]byte, error) {
	a, err := p.aead(field)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+12, 1+12+len(value)+tagSize)
	out[0] = fieldVersion
	_, _ = rand.Read(out[1:13])
	return a.Seal(out, out[1:13], []byte(value), fieldAAD(field, aad)), nil
}

// Decrypt opens a ciphertext from Encrypt with the same field and aad.
// errors: ErrIntegrity (modified, moved to another row or column, or
// another key).
func (p *PHICipher) Decrypt(field string, ciphertext []byte, aad string) (string, error) {
	if len(ciphertext) < 1+12+tagSize || ciphertext[0] != fieldVersion {
		return "", fmt.Errorf("%w: %s ciphertext malformed", ErrIntegrity, field)
	}
	a, err := p.aead(field)
	if err != nil {
		return "", err
	}
	b, err := a.Open(nil, ciphertext[1:13], ciphertext[13:], fieldAAD(field, aad))
	if err != nil {
		return "", fmt.Errorf("%w: %s ciphertext does not authenticate", ErrIntegrity, field)
	}
	return string(b), nil
}

func fieldAAD(field, aad string) []byte {
	return []byte("radflow phi v1\x00" + field + "\x00" + aad)
}

// BlindIndex returns hex(HMAC-SHA256(field's MAC key, value)[:16]): equal
// values of one field give equal indexes, and without the key an index
// reveals nothing else about the value. Callers normalise value first.
func (p *PHICipher) BlindIndex(field, value string) string {
	m := hmac.New(sha256.New, p.mac(field))
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil)[:BlindIndexSize])
}

// phiKeyFile is <data>/keys/phi-key.json: the PHI master key wrapped by a
// KEK (AES-256-GCM, additional data "radflow phi master key v1" ‖ kek id).
type phiKeyFile struct {
	Version int    `json:"version"`
	KEKID   string `json:"kek_id"`
	Nonce   string `json:"nonce"`   // base64, 12 bytes
	Wrapped string `json:"wrapped"` // base64, 48 bytes
}

// PHIKeyPath returns the wrapped PHI master key file of a data directory.
func PHIKeyPath(dataDir string) string { return filepath.Join(dataDir, "keys", "phi-key.json") }

// LoadPHIKey unwraps the PHI master key at path with ring; when the file
// is absent and create is true it generates a key and writes it wrapped
// by the active KEK (0600, atomically). errors: ErrUnknownKEK,
// ErrIntegrity, ErrKeyring, I/O errors (fs.ErrNotExist when absent and
// !create).
func LoadPHIKey(path string, ring *Keyring, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		master := make([]byte, KeySize)
		_, _ = rand.Read(master)
		if err := writePHIKey(path, ring, master); err != nil {
			return nil, err
		}
		return master, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: PHI key: %w", err)
	}
	master, _, err := openPHIKey(b, ring)
	return master, err
}

func openPHIKey(b []byte, ring *Keyring) (master []byte, kekID string, err error) {
	var f phiKeyFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		return nil, "", fmt.Errorf("%w: PHI key file malformed", ErrKeyring)
	}
	kek, err := ring.key(f.KEKID)
	if err != nil {
		return nil, "", fmt.Errorf("PHI key: %w", err)
	}
	nonce, err1 := base64.StdEncoding.DecodeString(f.Nonce)
	wrapped, err2 := base64.StdEncoding.DecodeString(f.Wrapped)
	if err1 != nil || err2 != nil || len(nonce) != 12 {
		return nil, "", fmt.Errorf("%w: PHI key file malformed", ErrKeyring)
	}
	g, err := newGCM(kek)
	if err != nil {
		return nil, "", err
	}
	master, err = g.Open(nil, nonce, wrapped, []byte("radflow phi master key v1"+f.KEKID))
	if err != nil || len(master) != KeySize {
		return nil, "", fmt.Errorf("%w: PHI key does not authenticate under KEK %q", ErrIntegrity, f.KEKID)
	}
	return master, f.KEKID, nil
}

func writePHIKey(path string, ring *Keyring, master []byte) error {
	kek, err := ring.key(ring.active)
	if err != nil {
		return err
	}
	g, err := newGCM(kek)
	if err != nil {
		return err
	}
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	wrapped := g.Seal(nil, nonce, master, []byte("radflow phi master key v1"+ring.active))
	b, err := json.MarshalIndent(phiKeyFile{Version: 1, KEKID: ring.active,
		Nonce: base64.StdEncoding.EncodeToString(nonce), Wrapped: base64.StdEncoding.EncodeToString(wrapped)}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// rewrapPHIKey re-wraps the PHI master key under the active KEK (a new
// file renamed over the old: either version is whole after a crash).
// A missing file is not an error (changed false).
func rewrapPHIKey(path string, ring *Keyring) (changed bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keys: PHI key: %w", err)
	}
	master, id, err := openPHIKey(b, ring)
	if err != nil {
		return false, err
	}
	if id == ring.active {
		return false, nil
	}
	return true, writePHIKey(path, ring, master)
}

// phiKEKID returns the KEK id wrapping the PHI key file ("" when absent).
func phiKEKID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("keys: PHI key: %w", err)
	}
	var f phiKeyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("%w: PHI key file malformed", ErrKeyring)
	}
	return f.KEKID, nil
}
