package audit

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size in bytes of a generated HMAC key.
const KeySize = 32

// ErrKey is returned (wrapped) for a missing, short or malformed key.
var ErrKey = errors.New("audit: bad HMAC key")

// Paths returns the audit directory and the default HMAC key file of a
// radflow data directory: <data>/audit and <data>/keys/audit-hmac.key.
// The key lives outside the audit directory so that copying or editing the
// trail does not carry the key with it; for stronger separation pass a key
// file from a secret mount instead.
func Paths(dataDir string) (auditDir, keyFile string) {
	return filepath.Join(dataDir, "audit"), filepath.Join(dataDir, "keys", "audit-hmac.key")
}

// LoadKey reads a key file: hex text (at least 64 hex digits = 32 bytes),
// surrounding whitespace ignored. Errors wrap ErrKey or the os error.
func LoadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: read key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not hex", ErrKey, path)
	}
	if len(k) < KeySize {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want at least %d", ErrKey, path, len(k), KeySize)
	}
	return k, nil
}

// LoadOrCreateKey loads the key at path, or, when the file does not exist,
// generates 32 random bytes and writes them as hex with mode 0600 (its
// directory created 0700). Creation is atomic (temporary file, fsync,
// hard link), so concurrent starts agree on one key and a crash never
// leaves a partial key file.
func LoadOrCreateKey(path string) ([]byte, error) {
	k, err := LoadKey(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: create key directory: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("audit: generate key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".audit-key-*")
	if err != nil {
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("audit: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("audit: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("audit: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return LoadKey(path)
		}
		return nil, fmt.Errorf("audit: create key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("audit: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("audit: sync directory: %w", err)
	}
	return nil
}
