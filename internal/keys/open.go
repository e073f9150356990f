package keys

import (
	"fmt"
	"log/slog"
)

// Options configures Open.
type Options struct {
	// DataDir is radflow's data directory (blobs/, keys/). Required.
	DataDir string
	// Env is the value of RADFLOW_KEK ("" when unset); KeyringFile a
	// keyring file (e.g. a mounted Kubernetes secret). With neither, the
	// keyring is DataDir/keys/kek.json, generated when absent.
	Env         string
	KeyringFile string
	Logger      *slog.Logger
}

// Keys is what a radflow process needs for encryption at rest.
type Keys struct {
	Ring   *Keyring
	Source string // "env" or the keyring file's path
	codec  *Codec
	phi    *PHICipher
}

// Open loads the keyring (see LoadKeyring), finishes any interrupted
// rewrap (Recover), and unwraps the PHI master key (DataDir/keys/
// phi-key.json, generated under the active KEK when absent).
// errors: ErrKeyring, ErrUnknownKEK, ErrIntegrity, I/O errors.
func Open(opts Options) (*Keys, error) {
	if opts.DataDir == "" {
		return nil, fmt.Errorf("%w: data directory required", ErrKeyring)
	}
	ring, src, err := LoadKeyring(LoadOptions{Env: opts.Env, File: opts.KeyringFile, DataDir: opts.DataDir, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	if _, err := Recover(opts.DataDir, ring); err != nil {
		return nil, err
	}
	master, err := LoadPHIKey(PHIKeyPath(opts.DataDir), ring, true)
	if err != nil {
		return nil, err
	}
	phi, err := NewPHICipher(master)
	if err != nil {
		return nil, err
	}
	return &Keys{Ring: ring, Source: src, codec: NewCodec(ring), phi: phi}, nil
}

// Codec returns the blob codec (for store.FSOptions.Codec).
func (k *Keys) Codec() *Codec { return k.codec }

// PHI returns the PHI column cipher (for store.SQLiteOptions.PHI).
func (k *Keys) PHI() *PHICipher { return k.phi }
