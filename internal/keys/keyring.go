package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// KeySize is the size in bytes of every key radflow uses (AES-256).
const KeySize = 32

// maxIDLen is the longest KEK id; it must fit the object header's id field.
const maxIDLen = 64

// ErrKeyring: the keyring is malformed (bad JSON, a key that is not 32
// bytes of base64, a bad or duplicate id, no active key) or a key
// operation on it is refused (retiring the active key).
var ErrKeyring = errors.New("keys: invalid keyring")

// ErrUnknownKEK: an object or wrapped key names a KEK the keyring does not
// hold (it was retired, or another keyring is loaded).
var ErrUnknownKEK = errors.New("keys: unknown key-encryption key")

// KEK is one key-encryption key.
type KEK struct {
	ID      string    // [A-Za-z0-9._-], 1..64 bytes; stored in object headers
	Key     []byte    // 32 bytes; never logged
	Created time.Time // UTC; zero when unknown (environment keys)
}

// Keyring holds the KEKs: Active encrypts new objects, every key decrypts.
// Not safe for concurrent mutation; concurrent reads are safe.
type Keyring struct {
	active string
	keys   []KEK // in file order
}

// keyringFile is the on-disk (and RADFLOW_KEK JSON) format.
type keyringFile struct {
	Version int       `json:"version"`
	Active  string    `json:"active"`
	Keys    []keyJSON `json:"keys"`
}

type keyJSON struct {
	ID      string `json:"id"`
	Key     string `json:"key"` // standard base64 of 32 bytes
	Created string `json:"created,omitempty"`
}

// NewKEK returns a fresh random KEK with id "kek-<UTC time>-<8 hex>".
func NewKEK() KEK {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k) // never fails (Go ≥ 1.24)
	var r [4]byte
	_, _ = rand.Read(r[:])
	now := time.Now().UTC().Truncate(time.Second)
	return KEK{ID: "kek-" + now.Format("20060102T150405Z") + "-" + hex.EncodeToString(r[:]), Key: k, Created: now}
}

// NewKeyring returns a keyring holding k, active.
func NewKeyring(k KEK) (*Keyring, error) {
	r := &Keyring{}
	if err := r.Add(k, true); err != nil {
		return nil, err
	}
	return r, nil
}

// Active returns the active KEK's id.
func (r *Keyring) Active() string { return r.active }

// IDs returns the ids of all keys, in file order.
func (r *Keyring) IDs() []string {
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.ID
	}
	return out
}

// key returns the KEK with id. errors: ErrUnknownKEK.
func (r *Keyring) key(id string) ([]byte, error) {
	for _, k := range r.keys {
		if k.ID == id {
			return k.Key, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKEK, id)
}

// Add adds k (making it active when active is true). errors: ErrKeyring
// (bad id or key length, duplicate id).
func (r *Keyring) Add(k KEK, active bool) error {
	if err := validID(k.ID); err != nil {
		return err
	}
	if len(k.Key) != KeySize {
		return fmt.Errorf("%w: key %q is %d bytes, want %d", ErrKeyring, k.ID, len(k.Key), KeySize)
	}
	if _, err := r.key(k.ID); err == nil {
		return fmt.Errorf("%w: duplicate key id %q", ErrKeyring, k.ID)
	}
	k.Key = slices.Clone(k.Key)
	r.keys = append(r.keys, k)
	if active || r.active == "" {
		r.active = k.ID
	}
	return nil
}

// Remove drops the key id (retire it only once no object uses it: see
// Retire). errors: ErrKeyring (the active key), ErrUnknownKEK.
func (r *Keyring) Remove(id string) error {
	if id == r.active {
		return fmt.Errorf("%w: cannot remove the active key %q", ErrKeyring, id)
	}
	i := slices.IndexFunc(r.keys, func(k KEK) bool { return k.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrUnknownKEK, id)
	}
	r.keys = slices.Delete(r.keys, i, i+1)
	return nil
}

func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: key id must be 1..%d bytes", ErrKeyring, maxIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: key id %q has characters outside [A-Za-z0-9._-]", ErrKeyring, id)
		}
	}
	return nil
}

// ParseKeyring parses the keyring JSON format:
//
//	{"version": 1, "active": "kek-1",
//	 "keys": [{"id": "kek-1", "key": "<base64 of 32 bytes>", "created": "RFC 3339"}]}
//
// errors: ErrKeyring.
func ParseKeyring(b []byte) (*Keyring, error) {
	var f keyringFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyring, jsonErr(err))
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("%w: version %d, want 1", ErrKeyring, f.Version)
	}
	r := &Keyring{}
	for _, kj := range f.Keys {
		key, err := base64.StdEncoding.DecodeString(kj.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q is not base64", ErrKeyring, kj.ID)
		}
		var created time.Time
		if kj.Created != "" {
			if created, err = time.Parse(time.RFC3339, kj.Created); err != nil {
				return nil, fmt.Errorf("%w: key %q: created is not RFC 3339", ErrKeyring, kj.ID)
			}
		}
		if err := r.Add(KEK{ID: kj.ID, Key: key, Created: created}, false); err != nil {
			return nil, err
		}
	}
	if len(r.keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrKeyring)
	}
	if _, err := r.key(f.Active); err != nil {
		return nil, fmt.Errorf("%w: active key %q is not in the keyring", ErrKeyring, f.Active)
	}
	r.active = f.Active
	return r, nil
}

// jsonErr drops any offending value from a JSON error (it could be key
// material) and keeps the position.
func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("JSON syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("JSON field %q has the wrong type", te.Field)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field") {
		return err.Error()
	}
	return "malformed JSON"
}

// MarshalJSON returns the keyring file format (it contains the keys).
func (r *Keyring) MarshalJSON() ([]byte, error) {
	f := keyringFile{Version: 1, Active: r.active}
	for _, k := range r.keys {
		kj := keyJSON{ID: k.ID, Key: base64.StdEncoding.EncodeToString(k.Key)}
		if !k.Created.IsZero() {
			kj.Created = k.Created.UTC().Format(time.RFC3339)
		}
		f.Keys = append(f.Keys, kj)
	}
	return json.MarshalIndent(f, "", "  ")
}

// envKeyring parses RADFLOW_KEK: a keyring JSON document, or the standard
// base64 of one 32-byte key, whose id is "env-" and 16 hex digits of
// SHA-256("radflow kek id" ‖ key) (stable across restarts, reveals
// nothing usable about the key).
func envKeyring(v string) (*Keyring, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") {
		return ParseKeyring([]byte(v))
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("%w: RADFLOW_KEK is neither keyring JSON nor the base64 of %d bytes", ErrKeyring, KeySize)
	}
	h := sha256.Sum256(append([]byte("radflow kek id"), key...))
	return NewKeyring(KEK{ID: "env-" + hex.EncodeToString(h[:8]), Key: key})
}

// LoadOptions says where LoadKeyring finds the KEKs; the first that is set
// wins: Env, File, then DataDir/keys/kek.json.
type LoadOptions struct {
	// Env is the value of RADFLOW_KEK (keyring JSON or base64 key); "" unset.
	Env string
	// File is a keyring file to read, e.g. a Kubernetes secret mounted at
	// /var/run/secrets/radflow/kek.json; it must exist.
	File string
	// DataDir: when Env and File are unset, the keyring is
	// DataDir/keys/kek.json, generated (0600) when absent.
	DataDir string
	// Logger gets the zero-config warning and permission warnings (never
	// key material); default slog.Default().
	Logger *slog.Logger
}

// KeyringPath returns the default keyring file of a data directory.
func KeyringPath(dataDir string) string { return filepath.Join(dataDir, "keys", "kek.json") }

// LoadKeyring loads the keyring per opts; source says where from ("env",
// the file path). A generated keyring is logged as a warning: production
// should supply its own KEK (environment, secret file, or a keyring kept
// off the data volume). errors: ErrKeyring, I/O errors.
func LoadKeyring(opts LoadOptions) (r *Keyring, source string, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	switch {
	case opts.Env != "":
		r, err = envKeyring(opts.Env)
		return r, "env", err
	case opts.File != "":
		r, err = readKeyringFile(opts.File, log)
		return r, opts.File, err
	case opts.DataDir == "":
		return nil, "", fmt.Errorf("%w: no KEK source (RADFLOW_KEK, a keyring file or a data directory)", ErrKeyring)
	}
	path := KeyringPath(opts.DataDir)
	r, err = readKeyringFile(path, log)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return r, path, err
	}
	if r, err = NewKeyring(NewKEK()); err != nil {
		return nil, "", err
	}
	if err := WriteKeyringFile(path, r); err != nil {
		return nil, "", err
	}
	log.Warn("keys: generated a new key-encryption key next to the data it protects; production should supply its own (RADFLOW_KEK or a keyring file on another volume) and keep a backup: losing it loses the data",
		"path", path, "kek_id", r.Active())
	return r, path, nil
}

func readKeyringFile(path string, log *slog.Logger) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: reading keyring: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("keys: keyring file is readable by group or others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	r, err := ParseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return r, nil
}

// WriteKeyringFile writes r to path (mode 0600, directory 0700 if created)
// atomically: temporary file, fsync, rename, fsync directory.
func WriteKeyringFile(path string, r *Keyring) error {
	b, err := r.MarshalJSON()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("keys: writing %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("keys: fsync %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keys: fsync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keys: fsync directory: %w", err)
	}
	return nil
}
