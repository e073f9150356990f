package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/radflow/radflow/internal/audit"
	"github.com/radflow/radflow/internal/keys"
	"github.com/radflow/radflow/internal/service"
)

const keysEncryptUsage = `Usage: radflow keys encrypt-existing [--data DIR] [--keyring FILE]

Encrypts, under the keyring's active KEK, the blobs of a data directory
written before encryption at rest was on (plaintext Part 10 files under
DIR/blobs, which radflow serve refuses to read). Each plaintext blob whose
SHA-256 matches its instances row (or that no row references) is written
encrypted to a temporary file beside it, fsynced, read back, renamed over
the original, and the directory fsynced: a crash leaves every blob either
plaintext or encrypted, and running the command again finishes the job.
Blobs already encrypted are skipped; a blob whose SHA-256 differs from its
row is reported and left as it is (exit status 1).

Stop radflow serve and worker first: the command refuses to run while the
audit trail's lock or the database is held. The keyring comes from
RADFLOW_KEK when set, else --keyring, else DIR/keys/kek.json (generated
when absent, as serve would). Back up the data directory first.

`

// runKeysEncryptExisting implements `radflow keys encrypt-existing`.
func runKeysEncryptExisting(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys encrypt-existing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./radflow-data", "data `DIR` (blobs/, keys/, radflow.db)")
	keyring := fs.String("keyring", "", "keyring `FILE` (default DIR/keys/kek.json)")
	fs.Usage = func() { fmt.Fprint(stderr, keysEncryptUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "radflow keys encrypt-existing: %v\n", err)
		return 1
	}
	if _, err := os.Stat(*data); err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	dbPath := filepath.Join(*data, "radflow.db")
	auditDir, _ := audit.Paths(*data)
	release, err := keys.LockDataDir(*data, dbPath,
		filepath.Join(auditDir, ".lock"), filepath.Join(service.WorkerAuditDir(*data), ".lock"))
	if err != nil {
		return fail(fmt.Errorf("%w; stop radflow serve/worker first", err))
	}
	defer release()

	ring, _, err := keys.LoadKeyring(keys.LoadOptions{Env: os.Getenv("RADFLOW_KEK"), File: *keyring, DataDir: *data, Logger: log})
	if err != nil {
		return fail(err)
	}
	expected, closeDB, err := instanceHashes(ctx, dbPath)
	if err != nil {
		return fail(err)
	}
	defer closeDB()
	// Audited like the other key operations: the admin trail must be
	// writable before anything changes.
	adm, err := openAdminAudit(*data, actionAdminKeys, stderr)
	if err != nil {
		return fail(fmt.Errorf("%w; nothing changed", err))
	}
	defer adm.close()
	st, err := keys.EncryptExisting(ctx, *data, ring, expected, log)
	if aerr := adm.record(map[string]string{"operation": "encrypt-existing", "kek_id": ring.Active()}, err); aerr != nil {
		return fail(fmt.Errorf("blobs encrypted but not audited: %w", aerr))
	}
	fmt.Fprintf(stdout, "active KEK %s; %d blobs encrypted (%d checked against their SHA-256, %d with no instance row), %d already encrypted, %d leftover temporary files removed\n",
		ring.Active(), st.Encrypted, st.Verified, st.Unverified, st.AlreadyEncrypted, st.TempRemoved)
	for _, k := range st.Mismatched {
		fmt.Fprintf(stdout, "SHA-256 mismatch, left unencrypted: %s\n", k)
	}
	for _, k := range st.Damaged {
		fmt.Fprintf(stdout, "damaged envelope header, left as it is: %s\n", k)
	}
	if err != nil {
		return fail(err)
	}
	if len(st.Mismatched)+len(st.Damaged) > 0 {
		fmt.Fprintf(stderr, "radflow keys encrypt-existing: %d blobs could not be encrypted (see above)\n", len(st.Mismatched)+len(st.Damaged))
		return 1
	}
	return 0
}

// instanceHashes returns a lookup of the SHA-256 recorded in the
// instances table of the SQLite database at dbPath (read only, no
// migration), or a nil lookup when there is no database.
func instanceHashes(ctx context.Context, dbPath string) (keys.ExpectedHash, func(), error) {
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, func() {}, nil
	}
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return nil, nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "query_only(1)")
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", filepath.Base(dbPath), err)
	}
	db.SetMaxOpenConns(1)
	stmt, err := db.PrepareContext(ctx, `SELECT sha256 FROM instances WHERE blob_key = ?`)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", filepath.Base(dbPath), err)
	}
	lookup := func(ctx context.Context, key string) (string, bool, error) {
		var sum string
		err := stmt.QueryRowContext(ctx, key).Scan(&sum)
		if errors.Is(err, sql.ErrNoRows) {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("reading %s: %w", filepath.Base(dbPath), err)
		}
		return sum, true, nil
	}
	return lookup, func() { stmt.Close(); db.Close() }, nil
}
