// Package keys is radflow's encryption at rest: key-encryption keys (KEKs)
// and the envelope encryption of stored objects and PHI columns.
//
// Key hierarchy:
//
//	KEK (keyring: file, RADFLOW_KEK env, or a Kubernetes secret file; one
//	│    active for new writes, older ones kept for reading until retired)
//	├── per-object data key (DEK, random 256 bits), AES-256-GCM-wrapped in
//	│   the object's fixed-size header; the body is AES-256-GCM in the
//	│   STREAM construction (64 KiB chunks, nonce = prefix ‖ counter ‖
//	│   last-chunk flag) so objects stream and truncation is detected.
//	└── PHI master key (random 256 bits, wrapped in <data>/keys/phi-key.json)
//	    ├── per-field AES-256-GCM keys (HKDF-SHA256): randomised encryption
//	    │   of Patient's Name, Patient ID, Patient's Birth Date, Accession
//	    │   Number in the instances table;
//	    └── per-field HMAC-SHA256 keys (HKDF-SHA256): blind indexes for
//	        exact QIDO matching (and optional name-prefix tokens).
//
// Rotation (Rotate, `radflow keys rotate`) adds a new active KEK and
// re-wraps every DEK and the PHI master key under it by rewriting only the
// fixed-size object headers in place, with an undo journal so a crash at
// any point leaves every object readable (see Rewrap). The body ciphertext
// and the PHI columns are never rewritten.
//
// An object's digest (ObjectDigest: SHA-256 over the header's fixed bytes,
// the STREAM nonce prefix and every chunk's tag, "env1:" + hex) is what
// package store records for an encrypted blob: it identifies the one
// object written, survives Rewrap, and costs no pass over the plaintext.
//
// Objects live one per file under <data>/blobs, or several to a pack file,
// <data>/blobs/packs/NNNNNNNN.pack: each pack object is a whole envelope
// object starting at a multiple of 4096 bytes (blob key
// "packs/NNNNNNNN.pack@OFFSET+LENGTH"), found by scanning the pack for the
// header magic at those offsets. Rewrap, Inventory and Retire see every
// pack object; EncryptExisting never rewrites a pack.
//
// EncryptExisting (`radflow keys encrypt-existing`) encrypts blobs written
// before encryption at rest was on, one temporary file + rename at a
// time, after checking each against its recorded SHA-256; LockDataDir
// refuses maintenance while serve or worker holds the data directory.
//
// It owns: the keyring format and loading, Codec (the store.Codec of
// package store), Rewrap/Rotate/Retire, and PHICipher (the
// store.PHICipher). It does not own: where blobs live or how PHI columns
// are queried (package store), nor TLS or access control.
//
// Errors: ErrIntegrity (a modified, truncated or reordered object, or a
// header no KEK in the ring opens), ErrUnknownKEK, ErrKeyring (malformed
// keyring or key material), ErrNotEncrypted (an object without the header).
// Secrets are never logged and never appear in error messages.
package keys
