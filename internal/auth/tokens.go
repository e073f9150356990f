package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // SQLite driver "sqlite"
)

// API token format and limits.
const (
	// TokenPrefix starts every generated API token.
	TokenPrefix = "rf_"
	// MinTokenLen is the shortest token accepted (seeded tokens included):
	// 32 characters of a random token carry ≥128 bits.
	MinTokenLen = 32
	// MaxTokenLen is the longest token accepted.
	MaxTokenLen = 512
	// AdminEnvTokenID is the ID of the token seeded from RADFLOW_ADMIN_TOKEN.
	AdminEnvTokenID = "tok_admin_env"
)

const tokenSchema = `CREATE TABLE IF NOT EXISTS auth_tokens (
	id           TEXT PRIMARY KEY,
	token_sha256 BLOB NOT NULL UNIQUE,
	name         TEXT NOT NULL DEFAULT '',
	roles        TEXT NOT NULL DEFAULT '[]',
	organisation TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	revoked_at   INTEGER
)`

// TokenSpec describes a token to create.
type TokenSpec struct {
	// Name is a label for people (e.g. "pacs-forwarder"); no secrets.
	Name         string
	Roles        []string
	Organisation string
	// ExpiresAt is when the token stops working; zero: never.
	ExpiresAt time.Time
}

// TokenInfo is a stored token without its secret.
type TokenInfo struct {
	ID           string
	Name         string
	Roles        []string
	Organisation string
	CreatedAt    time.Time
	ExpiresAt    time.Time // zero: never
	RevokedAt    time.Time // zero: not revoked
}

// TokenStore keeps service-account API tokens in the SQLite table
// auth_tokens. Only the SHA-256 of each token is stored (tokens are random
// with ≥128 bits, so a fast hash does not help guessing); the plaintext is
// returned once by Create/Bootstrap and never kept. Safe for concurrent
// use, and across processes sharing the database file.
type TokenStore struct {
	db    *sql.DB
	owned bool
	// Now returns the current time (default time.Now); for tests.
	Now func() time.Time
}

// NewTokenStore uses db (any SQLite database; the caller keeps it open
// and closes it) and creates the auth_tokens table when missing.
func NewTokenStore(ctx context.Context, db *sql.DB) (*TokenStore, error) {
	if _, err := db.ExecContext(ctx, tokenSchema); err != nil {
		return nil, fmt.Errorf("auth: creating token table: %w", err)
	}
	return &TokenStore{db: db, Now: time.Now}, nil
}

// OpenTokenStore opens (creating, mode 0600) the SQLite file at path,
// conventionally <data dir>/auth.db, in WAL mode. Close releases it.
func OpenTokenStore(ctx context.Context, path string) (*TokenStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("auth: token database: %w", err)
	} else {
		f.Close()
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("auth: token database: %w", err)
	}
	db.SetMaxOpenConns(4)
	s, err := NewTokenStore(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Close closes the database when OpenTokenStore opened it.
func (s *TokenStore) Close() error {
	if s.owned {
		return s.db.Close()
	}
	return nil
}

// NewToken returns a fresh API token: "rf_" + 43 base64url characters
// (256 random bits).
func NewToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func newTokenID() string {
	var b [8]byte
	rand.Read(b[:])
	return "tok_" + hex.EncodeToString(b[:])
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// checkTokenFormat validates a token's shape without revealing it.
func checkTokenFormat(token string) error {
	if len(token) < MinTokenLen || len(token) > MaxTokenLen {
		return unauthenticated("malformed token")
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return unauthenticated("malformed token")
		}
	}
	return nil
}

// Create stores a new random token for spec and returns its plaintext
// (shown once; only its hash is kept) and record.
// errors: ErrInvalidConfig (no roles), the database's.
func (s *TokenStore) Create(ctx context.Context, spec TokenSpec) (string, TokenInfo, error) {
	tok := NewToken()
	info, err := s.insert(ctx, s.db, newTokenID(), tok, spec)
	return tok, info, err
}

// Import stores a token whose value the operator chose (e.g. from a
// secret manager) under id (generated when ""), replacing a token with
// the same id. token must be 32..512 printable ASCII characters without
// spaces. errors: ErrInvalidConfig, the database's.
func (s *TokenStore) Import(ctx context.Context, id, token string, spec TokenSpec) (TokenInfo, error) {
	if checkTokenFormat(token) != nil {
		return TokenInfo{}, fmt.Errorf("%w: a token must be %d..%d printable characters without spaces", ErrInvalidConfig, MinTokenLen, MaxTokenLen)
	}
	if id == "" {
		id = newTokenID()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("auth: replacing token: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM auth_tokens WHERE id = ? OR token_sha256 = ?`, id, tokenHash(token)); err != nil {
		return TokenInfo{}, fmt.Errorf("auth: replacing token: %w", err)
	}
	info, err := s.insert(ctx, tx, id, token, spec)
	if err != nil {
		return TokenInfo{}, err
	}
	if err := tx.Commit(); err != nil {
		return TokenInfo{}, fmt.Errorf("auth: replacing token: %w", err)
	}
	return info, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *TokenStore) insert(ctx context.Context, db execer, id, token string, spec TokenSpec) (TokenInfo, error) {
	if len(spec.Roles) == 0 {
		return TokenInfo{}, fmt.Errorf("%w: a token needs at least one role", ErrInvalidConfig)
	}
	roles, _ := json.Marshal(spec.Roles)
	now := s.Now().UTC().Truncate(time.Second)
	var exp any
	if !spec.ExpiresAt.IsZero() {
		exp = spec.ExpiresAt.Unix()
	}
	_, err := db.ExecContext(ctx, `INSERT INTO auth_tokens (id, token_sha256, name, roles, organisation, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		id, tokenHash(token), spec.Name, string(roles), spec.Organisation, now.Unix(), exp)
	if err != nil {
		return TokenInfo{}, fmt.Errorf("auth: storing token: %w", err)
	}
	info := TokenInfo{ID: id, Name: spec.Name, Roles: append([]string(nil), spec.Roles...), Organisation: spec.Organisation, CreatedAt: now}
	if !spec.ExpiresAt.IsZero() {
		info.ExpiresAt = time.Unix(spec.ExpiresAt.Unix(), 0).UTC()
	}
	return info, nil
}

// Authenticate looks token up by its SHA-256 (compared in constant time)
// and returns its Principal: ID = token ID, Kind service, AuthMethod
// token, the stored roles and organisation.
// errors: ErrUnauthenticated ("malformed token", "unknown token", "token
// revoked", "token expired"); the database's otherwise.
func (s *TokenStore) Authenticate(ctx context.Context, token string) (Principal, error) {
	if err := checkTokenFormat(token); err != nil {
		return Principal{}, err
	}
	h := tokenHash(token)
	var (
		id, roles, org string
		stored         []byte
		exp, revoked   sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, token_sha256, roles, organisation, expires_at, revoked_at FROM auth_tokens WHERE token_sha256 = ?`, h).
		Scan(&id, &stored, &roles, &org, &exp, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, unauthenticated("unknown token")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("auth: token lookup: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, h) != 1 {
		return Principal{}, unauthenticated("unknown token")
	}
	if revoked.Valid {
		return Principal{}, unauthenticated("token revoked")
	}
	p := Principal{ID: id, Kind: KindService, Roles: []string{}, Organisation: org, AuthMethod: MethodToken}
	if exp.Valid {
		p.Expires = time.Unix(exp.Int64, 0).UTC()
		if !s.Now().Before(p.Expires) {
			return Principal{}, unauthenticated("token expired")
		}
	}
	if err := json.Unmarshal([]byte(roles), &p.Roles); err != nil {
		return Principal{}, fmt.Errorf("auth: token %s: roles: %w", id, err)
	}
	return p, nil
}

// Revoke marks the token id revoked (it stays listed). errors: ErrNotFound.
func (s *TokenStore) Revoke(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE auth_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, s.Now().Unix(), id)
	if err != nil {
		return fmt.Errorf("auth: revoking token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: token %q", ErrNotFound, id)
	}
	return nil
}

// List returns every stored token (revoked and expired included), oldest first.
func (s *TokenStore) List(ctx context.Context) ([]TokenInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, roles, organisation, created_at, expires_at, revoked_at FROM auth_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("auth: listing tokens: %w", err)
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var (
			ti           TokenInfo
			roles        string
			created      int64
			exp, revoked sql.NullInt64
		)
		if err := rows.Scan(&ti.ID, &ti.Name, &roles, &ti.Organisation, &created, &exp, &revoked); err != nil {
			return nil, fmt.Errorf("auth: listing tokens: %w", err)
		}
		json.Unmarshal([]byte(roles), &ti.Roles)
		ti.CreatedAt = time.Unix(created, 0).UTC()
		if exp.Valid {
			ti.ExpiresAt = time.Unix(exp.Int64, 0).UTC()
		}
		if revoked.Valid {
			ti.RevokedAt = time.Unix(revoked.Int64, 0).UTC()
		}
		out = append(out, ti)
	}
	return out, rows.Err()
}

// Bootstrap prepares the store at service start.
//
// With adminToken set (the value of RADFLOW_ADMIN_TOKEN), it is stored as
// the admin token AdminEnvTokenID (replacing a previous value) and
// Bootstrap returns "". Otherwise, when the store holds no token at all
// (revoked ones count), it creates a first admin token and returns its
// plaintext, to be printed once by the caller; later starts return "".
// errors: ErrInvalidConfig (adminToken too short), the database's.
func (s *TokenStore) Bootstrap(ctx context.Context, adminToken string) (string, error) {
	spec := TokenSpec{Name: "bootstrap admin", Roles: []string{RoleAdmin}}
	if adminToken != "" {
		adminToken = strings.TrimSpace(adminToken)
		spec.Name = "RADFLOW_ADMIN_TOKEN"
		_, err := s.Import(ctx, AdminEnvTokenID, adminToken, spec)
		return "", err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM auth_tokens`).Scan(&n); err != nil {
		return "", fmt.Errorf("auth: counting tokens: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	tok, _, err := s.Create(ctx, spec)
	if err != nil {
		return "", err
	}
	return tok, nil
}
