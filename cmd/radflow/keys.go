package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/radflow/radflow/internal/keys"
)

const keysUsage = `Usage: radflow keys <rotate|rewrap|retire|status|encrypt-existing> [flags] [KEK-ID]

Manages the key-encryption keys (KEKs) of encryption at rest.

  rotate   generate a new KEK, make it active in the keyring file, and
           re-wrap every object's data key and the PHI key under it
           (only the 144-byte object headers are rewritten); --retire
           then removes the old KEKs
  rewrap   re-wrap everything under the keyring's active KEK (after the
           active key was changed outside radflow, e.g. in RADFLOW_KEK or
           a Kubernetes secret; also finishes an interrupted rotate)
  retire   remove KEK-ID from the keyring file once no object uses it
  status   list the KEKs and how many objects each wraps
  encrypt-existing
           encrypt blobs stored before encryption at rest was on (each
           checked against its recorded SHA-256; serve/worker stopped)

rotate, rewrap, retire and encrypt-existing append one admin:keys record each (retire
also after rotate --retire) to DIR/admin/audit, keyed like the main
trail (RADFLOW_AUDIT_KEY_FILE, else DIR/keys/audit-hmac.key): the OS
user, the operation, the outcome and KEK ids, never key material. When
that trail cannot be opened nothing is changed (exit 1); check it with
radflow audit verify --data DIR.

Stop radflow serve/worker on the data directory first: objects written
during a rotation may keep the old KEK (run rewrap again to catch them).
The keyring comes from RADFLOW_KEK (keyring JSON or base64 key) when set,
else --keyring, else DIR/keys/kek.json. Back up the keyring: without it
the data cannot be read.

`

// runKeys implements `radflow keys`.
func runKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, keysUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub := args[0]
	if sub == "encrypt-existing" {
		return runKeysEncryptExisting(args[1:], stdout, stderr)
	}
	if !slices.Contains([]string{"rotate", "rewrap", "retire", "status"}, sub) {
		fmt.Fprintf(stderr, "radflow keys: unknown subcommand %q\n\n", sub)
		fmt.Fprint(stderr, keysUsage)
		return 2
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./radflow-data", "data `DIR` (blobs/, keys/)")
	keyring := fs.String("keyring", "", "keyring `FILE` (default DIR/keys/kek.json)")
	retire := false
	if sub == "rotate" {
		fs.BoolVar(&retire, "retire", false, "after re-wrapping, remove the old KEKs from the keyring file")
	}
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if (sub == "retire") != (fs.NArg() == 1) || fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	file := *keyring
	if file == "" {
		file = keys.KeyringPath(*data)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env := os.Getenv("RADFLOW_KEK")
	fail := func(err error) int {
		fmt.Fprintf(stderr, "radflow keys %s: %v\n", sub, err)
		return 1
	}
	if _, err := os.Stat(*data); err != nil {
		return fail(err)
	}
	// rotate, rewrap and retire are audited to <data>/admin/audit; the
	// trail is opened (and so known writable) before anything changes.
	var adm *adminAudit
	openAudit := func() error {
		var err error
		if adm, err = openAdminAudit(*data, actionAdminKeys, stderr); err != nil {
			return fmt.Errorf("nothing changed: %w", err)
		}
		return nil
	}
	defer func() {
		if adm != nil {
			adm.close()
		}
	}()
	// done records the operation's outcome; a record that cannot be
	// written fails the command (the change itself is not undone).
	done := func(detail map[string]string, opErr error) error {
		aerr := adm.record(detail, opErr)
		switch {
		case opErr != nil && aerr != nil:
			return fmt.Errorf("%w (and %v)", opErr, aerr)
		case opErr != nil:
			return opErr
		case aerr != nil:
			return fmt.Errorf("%s done but not audited: %w", detail["operation"], aerr)
		}
		return nil
	}
	switch sub {
	case "rotate":
		if env != "" {
			return fail(errors.New("RADFLOW_KEK is set: add the new key to your secret store, make it active there, then run `radflow keys rewrap`"))
		}
		if _, err := os.Stat(file); err != nil {
			return fail(err)
		}
		before, _, err := keys.LoadKeyring(keys.LoadOptions{File: file, Logger: log})
		if err != nil {
			return fail(err)
		}
		if err := openAudit(); err != nil {
			return fail(err)
		}
		id, st, err := keys.Rotate(ctx, *data, file, log)
		detail := map[string]string{"operation": "rotate", "kek_id": id, "previous_kek_ids": strings.Join(before.IDs(), ",")}
		if err := done(detail, err); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "new active KEK %s; %d objects, %d headers re-wrapped, %d plaintext files left as they are\n",
			id, st.Objects, st.Rewrapped, st.Plaintext)
		if retire {
			for _, old := range before.IDs() {
				err := keys.Retire(ctx, *data, file, old)
				if err := done(map[string]string{"operation": "retire", "kek_id": old}, err); err != nil {
					return fail(err)
				}
				fmt.Fprintf(stdout, "retired KEK %s\n", old)
			}
		}
		return 0
	case "rewrap":
		ring, _, err := keys.LoadKeyring(keys.LoadOptions{Env: env, File: *keyring, DataDir: *data, Logger: log})
		if err != nil {
			return fail(err)
		}
		if err := openAudit(); err != nil {
			return fail(err)
		}
		st, err := keys.Rewrap(ctx, *data, ring, log)
		if err := done(map[string]string{"operation": "rewrap", "kek_id": ring.Active()}, err); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "active KEK %s; %d objects, %d headers re-wrapped, %d torn headers restored\n",
			ring.Active(), st.Objects, st.Rewrapped, st.Restored)
		return 0
	case "retire":
		if env != "" {
			return fail(errors.New("RADFLOW_KEK is set: remove the key from your secret store instead"))
		}
		// The id is recorded only when the keyring holds it, so that a
		// mistyped argument (e.g. key material) never reaches the trail.
		detail := map[string]string{"operation": "retire"}
		if ring, _, err := keys.LoadKeyring(keys.LoadOptions{File: file}); err == nil && slices.Contains(ring.IDs(), fs.Arg(0)) {
			detail["kek_id"] = fs.Arg(0)
		}
		if err := openAudit(); err != nil {
			return fail(err)
		}
		err := keys.Retire(ctx, *data, file, fs.Arg(0))
		if err := done(detail, err); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "retired KEK %s\n", fs.Arg(0))
		return 0
	case "status":
		ring, src, err := keys.LoadKeyring(keys.LoadOptions{Env: env, File: *keyring, DataDir: *data, Logger: log})
		if err != nil {
			return fail(err)
		}
		st, err := keys.Inventory(ctx, *data)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "keyring %s\n", src)
		ids := ring.IDs()
		for id := range st.ByKEK {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			mark := ""
			if id == ring.Active() {
				mark = " (active)"
			} else if !slices.Contains(ring.IDs(), id) {
				mark = " (NOT IN KEYRING: these objects cannot be read)"
			}
			fmt.Fprintf(stdout, "  %s%s: %d objects\n", id, mark, st.ByKEK[id])
		}
		fmt.Fprintf(stdout, "plaintext files: %d\n", st.Plaintext)
		return 0
	}
	return 2 // not reached: sub was checked above
}
